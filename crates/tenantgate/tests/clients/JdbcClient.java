// What a JDBC app, and a GUI built on JDBC metadata (DBeaver, DataGrip), does first, through
// the gateway, as one tenant. Run as a single-file program:
//   java -cp /usr/share/java/postgresql.jar JdbcClient.java PORT SLUG KEY CANARY
// It prints one line per fact, `name|value`; the test checks the values, and that no other
// tenant's key, schema, role or canary appears anywhere in the output. Any exception fails it
// (exit status 1, with the stack trace).

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;

public class JdbcClient {
    static void fact(String name, Object value) {
        System.out.println(name + "|" + value);
    }

    public static void main(String[] args) throws Exception {
        String port = args[0], slug = args[1], key = args[2], canary = args[3];
        Properties p = new Properties();
        p.setProperty("user", slug);
        p.setProperty("password", key);
        // Server-side prepared statements from the first execution on.
        p.setProperty("prepareThreshold", "1");
        try (Connection c = DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + port + "/app", p)) {
            // Prepared statements, executed more than once (the driver names them after the first).
            try (PreparedStatement ps = c.prepareStatement("SELECT name FROM branches WHERE country = ? ORDER BY name")) {
                for (int i = 0; i < 3; i++) {
                    ps.setString(1, "XX");
                    try (ResultSet rs = ps.executeQuery()) {
                        List<String> names = new ArrayList<>();
                        while (rs.next()) names.add(rs.getString(1));
                        fact("own_canary_" + i, names.contains(canary));
                    }
                }
            }
            // A batch in a transaction, rolled back.
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO branches (name, city, country) VALUES (?, 'Oslo', 'NO')")) {
                for (int i = 0; i < 5; i++) {
                    ps.setString(1, "jdbc-batch-" + i);
                    ps.addBatch();
                }
                int total = 0;
                for (int n : ps.executeBatch()) total += n;
                fact("batch_inserted", total);
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM branches WHERE name LIKE 'jdbc-batch-%'")) {
                rs.next();
                fact("batch_visible_in_tx", rs.getInt(1));
            }
            c.rollback();
            c.setAutoCommit(true);
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM branches WHERE name LIKE 'jdbc-batch-%'")) {
                rs.next();
                fact("batch_after_rollback", rs.getInt(1));
            }

            DatabaseMetaData md = c.getMetaData();
            TreeSet<String> tables = new TreeSet<>();
            TreeSet<String> schemas = new TreeSet<>();
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                    schemas.add(rs.getString("TABLE_SCHEM"));
                    fact("table", rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + " " + rs.getString("REMARKS"));
                }
            }
            fact("tables", tables);
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) fact("schema", rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = md.getCatalogs()) {
                while (rs.next()) fact("catalog", rs.getString("TABLE_CAT"));
            }
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, null, "orders", "%")) {
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME"));
                    fact("column", rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getString("REMARKS"));
                }
            }
            fact("orders_columns", columns);
            List<String> pk = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, null, "orders")) {
                while (rs.next()) pk.add(rs.getString("COLUMN_NAME"));
            }
            fact("orders_pk", pk);
            TreeSet<String> fks = new TreeSet<>();
            try (ResultSet rs = md.getImportedKeys(null, null, "menu_items")) {
                while (rs.next()) fks.add(rs.getString("PKTABLE_NAME") + "." + rs.getString("PKCOLUMN_NAME") + "<-" + rs.getString("FKCOLUMN_NAME"));
            }
            fact("menu_items_fks", fks);
            TreeSet<String> indexes = new TreeSet<>();
            try (ResultSet rs = md.getIndexInfo(null, null, "orders", false, false)) {
                while (rs.next()) if (rs.getString("INDEX_NAME") != null) indexes.add(rs.getString("INDEX_NAME"));
            }
            fact("orders_indexes", indexes);
            fact("user", md.getUserName());
        }
    }
}
