-- CPU-heavy statement for bench/neighbour.sh: a large generate_series counted, no I/O.
SELECT count(*) FROM generate_series(1, 5000000);
