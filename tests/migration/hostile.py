"""A small hostile dataset for the migration tier (database ``ds_hostile``), and the mutations a
verifier must notice.

Everything a migration or its verifier can get wrong with names and values: CJK table and column
names, a table name with a space, a reserved word as table/column name, a backquote inside a
name, a table without a primary key holding duplicate rows, MiB-size blobs, DECIMAL(20,6) and
DATETIME(6)/TIMESTAMP(6) edges, NULL next to '' and 'N', a view, a trigger, a procedure, a
function, an event with a schedule and foreign keys. Deterministic (seeded), about 4 MiB.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DB = "ds_hostile"
OWNER = f"{DB}_owner"

SCHEMA = """\
SET NAMES utf8mb4;
SET time_zone = '+00:00';
DROP DATABASE IF EXISTS ds_hostile;
CREATE DATABASE ds_hostile DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE ds_hostile;
CREATE TABLE `商品` (
  `编号` INT NOT NULL PRIMARY KEY,
  `名称` VARCHAR(100) NOT NULL,
  `价格` DECIMAL(20,6) NOT NULL,
  `备注` TEXT NULL,
  KEY `ix_名称` (`名称`)
) ENGINE=InnoDB;
CREATE TABLE `order line` (
  `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `商品编号` INT NOT NULL,
  `select` INT NOT NULL,
  `a``b` VARCHAR(20) NULL,
  `c` VARCHAR(20) NULL,
  KEY `ix order` (`商品编号`),
  CONSTRAINT `fk order line 商品` FOREIGN KEY (`商品编号`) REFERENCES `商品` (`编号`) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE `no key` (
  `a` VARCHAR(10) NULL,
  `b` VARCHAR(10) NULL,
  `n` INT NULL
) ENGINE=InnoDB;
CREATE TABLE `blobs` (
  `id` INT NOT NULL PRIMARY KEY,
  `data` LONGBLOB NULL
) ENGINE=InnoDB;
CREATE TABLE `edges` (
  `id` INT NOT NULL PRIMARY KEY,
  `d` DECIMAL(20,6) NULL,
  `dt` DATETIME(6) NULL,
  `ts` TIMESTAMP(6) NULL DEFAULT NULL,
  `f` DOUBLE NULL,
  `bits` BIT(8) NULL,
  `s` VARCHAR(10) NULL
) ENGINE=InnoDB;
CREATE TABLE `group` (
  `key` INT NOT NULL PRIMARY KEY,
  `desc` VARCHAR(20) COLLATE utf8mb4_bin NULL
) ENGINE=InnoDB;
CREATE TABLE `weird``name` (
  `id` INT NOT NULL PRIMARY KEY,
  `v` VARCHAR(10) NULL
) ENGINE=InnoDB;
CREATE TABLE `日志` (
  `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  `msg` VARCHAR(100) NOT NULL,
  `at` DATETIME(6) NOT NULL
) ENGINE=InnoDB;
"""

# The body of the function, kept here so a mutation can restore or alter it.
FUNCTION = """\
CREATE DEFINER = {definer} FUNCTION `总价`(`p 编号` INT) RETURNS DECIMAL(20,6)
  READS SQL DATA
BEGIN
  RETURN (SELECT COALESCE(SUM(`select` * s.`价格`), 0) FROM `order line` l
          JOIN `商品` s ON s.`编号` = l.`商品编号` WHERE l.`商品编号` = `p 编号`);
END"""

OBJECTS = """\
DELIMITER ;;
CREATE TRIGGER `trg 日志` AFTER INSERT ON `order line` FOR EACH ROW
BEGIN
  INSERT INTO `日志` (`msg`, `at`) VALUES (CONCAT('line ', NEW.`id`), NOW(6));
END;;
{function};;
CREATE PROCEDURE `add line`(IN `p item` INT, IN `select` INT, OUT `new id` INT)
  MODIFIES SQL DATA
BEGIN
  INSERT INTO `order line` (`商品编号`, `select`) VALUES (`p item`, `select`);
  SET `new id` = LAST_INSERT_ID();
END;;
CREATE EVENT `ev nightly` ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00'
  ON COMPLETION PRESERVE DISABLE
  DO DELETE FROM `日志` WHERE `at` < NOW() - INTERVAL 90 DAY;;
DELIMITER ;
CREATE VIEW `v 汇总` AS
  SELECT s.`编号`, s.`名称`, COUNT(l.`id`) AS `lines`, SUM(l.`select`) AS `qty`
  FROM `商品` s LEFT JOIN `order line` l ON l.`商品编号` = s.`编号`
  GROUP BY s.`编号`, s.`名称`;
"""

# DECIMAL(20,6) and DATETIME(6)/TIMESTAMP(6) at their limits (TIMESTAMPs in UTC: see SCHEMA),
# DOUBLE extremes, BIT, and '', 'N', 'NULL', ' ' next to NULL.
EDGES = """\
INSERT INTO `edges` VALUES
 (1, 99999999999999.999999, '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', 0.1, b'0', ''),
 (2, -99999999999999.999999, '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', 1e308, b'11111111', 'N'),
 (3, 0.000001, '2024-02-29 12:34:56.000001', '2024-03-31 01:30:00.500000', -2.5e-300, b'10101010', NULL),
 (4, -0.000001, NULL, NULL, NULL, NULL, 'NULL'),
 (5, 0.000000, '2000-01-01 00:00:00.000000', '2000-01-01 00:00:00.000000', 0, b'1', ' ');
"""

_CJK = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗茶叶绿乌龙手机耳机"


def _lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        return "X'" + v.hex() + "'"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"


def _insert(table: str, rows: list[tuple]) -> str:
    return "".join(f"INSERT INTO {table} VALUES " + ",".join(
        "(" + ",".join(_lit(v) for v in r) + ")" for r in rows[i:i + 500]) + ";\n"
        for i in range(0, len(rows), 500))


def sql(seed: int = 9) -> str:
    """The whole dataset as SQL for the mariadb client (root, default sql_mode)."""
    rng = random.Random(seed)
    out = [SCHEMA, "SET foreign_key_checks = 0;\n"]
    goods = [(i, "".join(rng.choice(_CJK) for _ in range(rng.randint(2, 8))) + f" {i}",
              "%d.%06d" % (rng.randint(0, 10**8), rng.randint(0, 999999)),
              None if i % 7 == 0 else ("" if i % 11 == 0 else "备注 'quoted' \\ back " * rng.randint(1, 4)))
             for i in range(1, 501)]
    out.append(_insert("`商品`", goods))
    lines = [(i, rng.randint(1, 500), rng.randint(1, 9), None if i % 5 == 0 else f"x{i % 13}", f"y{i % 7}")
             for i in range(1, 3001)]
    lines[99] = (100, 7, 2, "ab", "c")  # the column-boundary row: ('ab','c')
    out.append(_insert("`order line`", lines))
    nokey = [("x", "y", 1), ("x", "y", 1), ("p", "q", 2)]  # a duplicate pair and a single row
    nokey += [(rng.choice(["a", "b", "", None, "N"]), rng.choice(["c", "d", None]), rng.randint(0, 5))
              for _ in range(997)]
    out.append(_insert("`no key`", nokey))
    blobs = [(1, rng.randbytes(1024 * 1024)), (2, rng.randbytes(3 * 1024 * 1024)), (3, b""), (4, None)]
    for b in blobs:
        out.append(_insert("`blobs`", [b]))
    out.append(EDGES)
    out.append(_insert("`group`", [(i, rng.choice(["Aa", "aA", "ß", "ss", "é", "e", None])) for i in range(100)]))
    out.append(_insert("`weird``name`", [(i, f"w`{i}") for i in range(5)]))
    out.append(_insert("`日志`", [(i, f"boot {i}", "2024-01-01 00:00:00.%06d" % i) for i in range(1, 201)]))
    out.append("SET foreign_key_checks = 1;\n")
    out.append(OBJECTS.format(function=FUNCTION.format(definer="CURRENT_USER")))
    return "".join(out)


def row_total() -> int:
    return 500 + 3000 + 1000 + 4 + 5 + 100 + 5 + 200


@dataclass(frozen=True)
class Mutation:
    """A change made on the target after a verified copy, and what the report must name."""

    name: str
    sql: str
    names: str  # a line of the verification report must contain this

    def __str__(self) -> str:
        return self.name


_BODY_CHANGED = FUNCTION.format(definer=f"`{OWNER}`").replace("COALESCE(SUM(", "COALESCE(MAX(")

MUTATIONS = [
    Mutation("one byte of one row",
             "UPDATE `blobs` SET `data` = INSERT(`data`, 700001, 1, "
             "UNHEX(LPAD(HEX(ASCII(SUBSTRING(`data`, 700001, 1)) ^ 1), 2, '0'))) WHERE `id` = 2",
             "differs: table `blobs`"),
    Mutation("one byte of a short column",
             "UPDATE `order line` SET `c` = 'z4' WHERE `id` = 200 AND `c` = 'y4'",
             "differs: table `order line`"),
    Mutation("column-boundary shift",
             "UPDATE `order line` SET `a``b` = 'a', `c` = 'bc' WHERE `id` = 100",
             "differs: table `order line`"),
    Mutation("swapped duplicate in a table without a key",
             "UPDATE `no key` SET `a` = 'p', `b` = 'q', `n` = 2 WHERE `a` = 'x' AND `b` = 'y' AND `n` = 1 LIMIT 1",
             "differs: table `no key`"),
    Mutation("dropped index",
             "ALTER TABLE `商品` DROP INDEX `ix_名称`",
             "missing on target: index `商品`.`ix_名称`"),
    Mutation("dropped foreign key",
             "ALTER TABLE `order line` DROP FOREIGN KEY `fk order line 商品`",
             "missing on target: foreign key `order line`.`fk order line 商品`"),
    Mutation("changed event schedule",
             # same time zone and definer (ALTER EVENT would set both): only the interval changes
             "SET time_zone = '+00:00'; ALTER DEFINER = `ds_hostile_owner` EVENT `ev nightly` "
             "ON SCHEDULE EVERY 2 DAY STARTS '2030-01-01 03:00:00'",
             "differs: event `ev nightly`"),
    Mutation("changed routine body",
             "DROP FUNCTION `总价`;\nDELIMITER ;;\n" + _BODY_CHANGED + ";;\nDELIMITER ;",
             "differs: routine FUNCTION `总价`"),
    Mutation("changed collation",
             "ALTER TABLE `group` MODIFY `desc` VARCHAR(20) COLLATE utf8mb4_unicode_ci NULL",
             "differs: column `group`.`desc`"),
]
