<?php
// Places orders the way the shop's PHP does: every order is a new request that reads the app's
// database.php (so it follows the switch of a move), connects as the app user and commits one
// order with one item in a transaction (the shop's own webha_place_order). Each order has a unique
// order_no; the writer retries the same order until it is acknowledged (a duplicate key on retry =
// an earlier attempt committed).
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

// The shop's own order path (templates/app/application/shop_order.php.j2), next to database.php
// as in the app's layout (webha/testbed/orders.py installs both).
require dirname($config) . '/shop_order.php';

function attempt(string $config, string $no): string {
    // No opcache in the CLI: a require reads the file as it is now, as php-fpm does per request
    // (the guests keep database.php out of opcache: templates/php/opcache-webha.ini.j2).
    $cfg = require $config;
    $r = webha_place_order($cfg, $no);
    return $r['status'] === 'dup' ? 'dup' : $r['db'];
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
            $host = attempt($config, $no);  // 'dup': an earlier attempt of this order committed
        } catch (mysqli_sql_exception $e) {
            $errors++;
            printf("err %s %.6f %d %s\n", $no, microtime(true), $e->getCode(),
                   str_replace("\n", ' ', $e->getMessage()));
            usleep(20000);
            continue;
        }
        $acked++;
        printf("ack %s %.6f %.6f %d %s\n", $no, $first, microtime(true), $try, $host);
        break;
    }
}
printf("done %d %d %d\n", $placed, $acked, $errors);
