<?php
// Places orders the way the shop's PHP does: every order is a new request that reads the app's
// database.php (so it follows the switch of a move), connects as the app user and commits one
// order with one item in a transaction. Each order has a unique order_no; the writer retries the
// same order until it is acknowledged (a duplicate key on retry = an earlier attempt committed).
// Output, one line per event: "ack <order_no> <t_first_try> <t_ack> <attempts> <host>",
// "err <order_no> <t> <errno> <message>", at the end "done <placed> <acked> <errors>".
// Used by tests/migration/test_replicate.py and bench/db_move.py.
// Usage: php order_writer.php DATABASE_PHP RATE SECONDS PREFIX [STOPFILE]
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
[$_, $config, $rate, $seconds, $prefix] = array_slice($argv, 0, 5);
$stopfile = $argv[5] ?? '';
$rate = (float)$rate;
$seconds = (float)$seconds;
$t0 = microtime(true);
$placed = $acked = $errors = 0;

function attempt(string $config, string $no): string {
    // No opcache in the CLI: a require reads the file as it is now, as php-fpm does per request
    // (modulo opcache revalidation, see docs/migration.md).
    $cfg = require $config;
    $db = mysqli_init();
    $db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
    $db->options(MYSQLI_OPT_READ_TIMEOUT, 5);
    $db->real_connect($cfg['hostname'], $cfg['username'], $cfg['password'], $cfg['database'],
                      (int)$cfg['hostport']);
    try {
        $db->begin_transaction();
        $st = $db->prepare("INSERT INTO orders (user_id, order_no, status, created_at) VALUES (1, ?, 'pending', NOW())");
        $st->bind_param('s', $no);
        $st->execute();
        $db->query("INSERT INTO order_items (order_id, goods_id, quantity, unit_price) VALUES (LAST_INSERT_ID(), 1, 1, 9.99)");
        $db->commit();
    } finally {
        $db->close();
    }
    return $cfg['hostname'];
}

for ($i = 0; ; $i++) {
    $due = $t0 + $i / $rate;
    if ($due - $t0 >= $seconds || ($stopfile !== '' && file_exists($stopfile))) {
        break;
    }
    $wait = $due - microtime(true);
    if ($wait > 0) {
        usleep((int)($wait * 1e6));
    }
    $no = sprintf('%s%08d', $prefix, $i);
    $placed++;
    $first = microtime(true);
    for ($try = 1; $try <= 200; $try++) {
        try {
            $host = attempt($config, $no);
        } catch (mysqli_sql_exception $e) {
            if ($e->getCode() == 1062) {  // an earlier attempt of this order committed
                $host = 'dup';
            } else {
                $errors++;
                printf("err %s %.6f %d %s\n", $no, microtime(true), $e->getCode(),
                       str_replace("\n", ' ', $e->getMessage()));
                usleep(20000);
                continue;
            }
        }
        $acked++;
        printf("ack %s %.6f %.6f %d %s\n", $no, $first, microtime(true), $try, $host);
        break;
    }
}
printf("done %d %d %d\n", $placed, $acked, $errors);
