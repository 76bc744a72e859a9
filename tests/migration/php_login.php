<?php
// Test helper (tests/migration/test_password.py): load a rendered database.php exactly as the app
// does (require), then log in to MariaDB with what it says, over mysqli, and run one query.
// Prints the password's bytes in hex (to compare with what was configured) and the query's answer.
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$c = require $argv[1];
$db = new mysqli($c['hostname'], $c['username'], $c['password'], $c['database'], (int) $c['hostport']);
$db->set_charset($c['charset']);
echo bin2hex($c['password']), "\n";
echo $db->query($argv[2])->fetch_row()[0], "\n";
