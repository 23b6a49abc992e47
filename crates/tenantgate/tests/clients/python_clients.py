"""What Python apps and tools do first, through the gateway, as one tenant.

Usage: python_clients.py PORT SLUG KEY CANARY

Runs, each in its own section of the JSON it prints:
- asyncpg: connect, typed parameters (int[], uuid[] with `= any($1::uuid[])`), a pool of 4
  over 20 tasks, and a cancel (a query cut by `timeout=`, then the connection still works);
- SQLAlchemy 2 on psycopg and on asyncpg: ORM reads and a write, and `inspect()` reflection
  of tables, columns (with comments), primary keys, foreign keys and indexes;
- Django: `inspectdb` and the introspection API.
An exception in a section is recorded in it, not raised, so the test sees every section.
The caller checks the values, and that no other tenant's key, schema, role or canary appears
anywhere in what this prints.
"""

import asyncio
import io
import json
import sys
import traceback
import uuid

PORT, SLUG, KEY, CANARY = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
HOST = "127.0.0.1"


def section(fn):
    try:
        return fn()
    except Exception as e:  # the test prints it; nothing is hidden
        return {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}


# ---------------------------------------------------------------- asyncpg

def run_asyncpg():
    import asyncpg

    async def main():
        res = {}
        conn = await asyncpg.connect(host=HOST, port=int(PORT), user=SLUG, password=KEY, database="app")
        # Arrays and uuids make asyncpg introspect their types (it reads pg_type, pg_range, ...).
        res["int_array"] = await conn.fetchval("SELECT '{1,2}'::int[]")
        ids = [r["branch_id"] for r in await conn.fetch("SELECT branch_id FROM branches ORDER BY name")]
        res["branch_ids"] = len(ids)
        names = await conn.fetch("SELECT name FROM branches WHERE branch_id = any($1::uuid[]) ORDER BY name", ids)
        res["any_uuid"] = [r["name"] for r in names]
        res["own_canary"] = CANARY in res["any_uuid"]
        res["uuid_param"] = await conn.fetchval("SELECT $1::uuid", uuid.UUID(int=42)) == uuid.UUID(int=42)
        res["numeric"] = str(await conn.fetchval("SELECT price FROM menu_items WHERE name = $1", CANARY))
        # Cancel: asyncpg sends a CancelRequest when the timeout fires.
        try:
            await conn.execute("SELECT pg_sleep(20)", timeout=0.5)
            res["cancelled"] = False
        except asyncio.TimeoutError:
            res["cancelled"] = True
        res["after_cancel"] = await conn.fetchval("SELECT 1")
        await conn.close()
        pool = await asyncpg.create_pool(host=HOST, port=int(PORT), user=SLUG, password=KEY, database="app", min_size=2, max_size=4)

        async def one(i):
            async with pool.acquire() as c:
                return await c.fetchval("SELECT $1::int[]", [i, i + 1])

        res["pool"] = [r[0] for r in await asyncio.gather(*[one(i) for i in range(20)])]
        await pool.close()
        return res

    return asyncio.run(main())


# ---------------------------------------------------------------- SQLAlchemy

def reflect(insp):
    """What SQLAlchemy reflection reports, as plain data."""
    tables = sorted(insp.get_table_names())
    out = {"default_schema": insp.default_schema_name, "tables": tables, "views": sorted(insp.get_view_names())}
    cols = insp.get_columns("orders")
    out["orders_columns"] = [c["name"] for c in cols]
    out["orders_comments"] = {c["name"]: c.get("comment") for c in cols}
    out["orders_pk"] = insp.get_pk_constraint("orders")["constrained_columns"]
    out["menu_items_fks"] = sorted(
        [(fk["referred_table"], fk["constrained_columns"], fk["referred_columns"]) for fk in insp.get_foreign_keys("menu_items")]
    )
    out["orders_indexes"] = sorted(ix["name"] for ix in insp.get_indexes("orders"))
    out["orders_table_comment"] = insp.get_table_comment("orders").get("text")
    out["schemas"] = sorted(insp.get_schema_names())
    return out


def orm_models():
    from sqlalchemy import String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class Branch(Base):
        __tablename__ = "branches"
        branch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String)
        city: Mapped[str] = mapped_column(String)
        country: Mapped[str] = mapped_column(String)

    return Branch


def url(driver):
    from sqlalchemy import URL

    return URL.create(f"postgresql+{driver}", username=SLUG, password=KEY, host=HOST, port=int(PORT), database="app")


def run_sqlalchemy_psycopg():
    from sqlalchemy import create_engine, inspect, select
    from sqlalchemy.orm import Session

    engine = create_engine(url("psycopg"))
    Branch = orm_models()
    res = {}
    with Session(engine) as s:
        names = s.scalars(select(Branch.name).order_by(Branch.name)).all()
        res["own_canary"] = CANARY in names
        s.add(Branch(branch_id=uuid.uuid4(), name=f"sa-{uuid.uuid4().hex[:8]}", city="Oslo", country="NO"))
        s.commit()
        res["count"] = len(s.scalars(select(Branch.name)).all())
    with engine.connect() as c:
        res["reflect"] = reflect(inspect(c))
    engine.dispose()
    return res


def run_sqlalchemy_asyncpg():
    from sqlalchemy import inspect, select
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    Branch = orm_models()

    async def main():
        engine = create_async_engine(url("asyncpg"))
        res = {}
        async with AsyncSession(engine) as s:
            names = (await s.scalars(select(Branch.name).order_by(Branch.name))).all()
            res["own_canary"] = CANARY in names
        async with engine.connect() as c:
            res["reflect"] = await c.run_sync(lambda sync: reflect(inspect(sync)))
        await engine.dispose()
        return res

    return asyncio.run(main())


# ---------------------------------------------------------------- Django

def run_django():
    import django
    from django.conf import settings

    settings.configure(
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "HOST": HOST, "PORT": PORT,
                               "NAME": "app", "USER": SLUG, "PASSWORD": KEY}},
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    res = {}
    buf = io.StringIO()
    call_command("inspectdb", stdout=buf)
    res["inspectdb"] = buf.getvalue()
    with connection.cursor() as cur:
        res["tables"] = sorted(t.name for t in connection.introspection.get_table_list(cur))
        res["orders_pk"] = connection.introspection.get_primary_key_columns(cur, "orders")
        res["orders_relations"] = sorted(connection.introspection.get_relations(cur, "orders").keys())
        res["orders_constraints"] = len(connection.introspection.get_constraints(cur, "orders"))
        res["orders_description"] = [c.name for c in connection.introspection.get_table_description(cur, "orders")]
    connection.close()
    return res


print(json.dumps({
    "asyncpg": section(run_asyncpg),
    "sqlalchemy_psycopg": section(run_sqlalchemy_psycopg),
    "sqlalchemy_asyncpg": section(run_sqlalchemy_asyncpg),
    "django": section(run_django),
}, default=str))
