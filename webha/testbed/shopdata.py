"""A sample shop database (``ds_shop``) with a deterministic generator, emitted as SQL.

The seed course migrates a real shop's database; tests and the benchmark need one that exercises
what a migration can get wrong: foreign keys, utf8mb4 text (Chinese, 4-byte emoji), NULLs, binary
blobs, triggers, a stored function and procedure, a view and an event. The same ``--rows`` and
``--seed`` always give byte-identical SQL, so a checksum taken on one machine can be compared with
one taken anywhere else.

Usage (stdlib only: the seed template pipes this file to ``python3`` on a guest)::

    python3 -m webha.shopdata --rows 2000 | mariadb
    python3 -m webha.shopdata --target-mb 200 --database ds_shop | mariadb

Size: ``--rows N`` is the number of users; the other tables scale from it (N/2 goods with an
image blob each, 2N orders, ~2.5 items per order, N/10 avatars). ``--target-mb`` picks N so that
the data is roughly that many MiB on disk.
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Iterable, Iterator, TextIO

# Average bytes of table data per user row (users + 1/2 goods + 2 orders + 5 items + blobs),
# measured with InnoDB; used by --target-mb only.
_BYTES_PER_ROW = 16_500

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
_WORDS = [
    "新款", "正品", "包邮", "限时", "特价", "手机", "耳机", "充电器", "茶叶", "绿茶", "乌龙",
    "笔记本", "键盘", "鼠标", "T恤", "外套", "运动鞋", "保温杯", "台灯", "背包", "雨伞",
]
_CATEGORIES = [
    ("数码", None), ("服装", None), ("食品", None), ("家居", None),
    ("手机", 1), ("电脑配件", 1), ("男装", 2), ("女装", 2), ("茶叶", 3), ("零食", 3),
    ("厨房", 4), ("灯具", 4),
]
_EMOJI = ["🙂", "🛒", "🍵", "📦", "🎁"]
_STATUSES = ["pending", "paid", "shipped", "done", "cancelled"]

SCHEMA = """\
CREATE TABLE categories (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  parent_id INT UNSIGNED NULL,
  name VARCHAR(64) NOT NULL,
  sort SMALLINT NOT NULL DEFAULT 0,
  CONSTRAINT fk_categories_parent FOREIGN KEY (parent_id) REFERENCES categories (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(32) NOT NULL,
  email VARCHAR(128) NULL,
  nickname VARCHAR(64) NULL,
  password_hash CHAR(60) NOT NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0.00,
  avatar MEDIUMBLOB NULL,
  created_at DATETIME NOT NULL,
  last_login DATETIME NULL,
  UNIQUE KEY uq_users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE goods (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  category_id INT UNSIGNED NOT NULL,
  name VARCHAR(128) NOT NULL,
  description TEXT NULL,
  price DECIMAL(10,2) NOT NULL,
  stock INT NOT NULL DEFAULT 0,
  on_sale TINYINT(1) NOT NULL DEFAULT 1,
  image MEDIUMBLOB NULL,
  created_at DATETIME NOT NULL,
  updated_at DATETIME NULL,
  KEY ix_goods_category (category_id),
  CONSTRAINT fk_goods_category FOREIGN KEY (category_id) REFERENCES categories (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE orders (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id INT UNSIGNED NOT NULL,
  order_no CHAR(20) NOT NULL,
  status ENUM('pending','paid','shipped','done','cancelled') NOT NULL DEFAULT 'pending',
  total DECIMAL(12,2) NOT NULL DEFAULT 0.00,
  remark VARCHAR(255) NULL,
  created_at DATETIME NOT NULL,
  paid_at DATETIME NULL,
  UNIQUE KEY uq_orders_no (order_no),
  KEY ix_orders_user (user_id),
  CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE order_items (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id INT UNSIGNED NOT NULL,
  goods_id INT UNSIGNED NOT NULL,
  quantity SMALLINT UNSIGNED NOT NULL,
  unit_price DECIMAL(10,2) NOT NULL,
  KEY ix_items_order (order_id),
  KEY ix_items_goods (goods_id),
  CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
  CONSTRAINT fk_items_goods FOREIGN KEY (goods_id) REFERENCES goods (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE stock_log (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  goods_id INT UNSIGNED NOT NULL,
  delta INT NOT NULL,
  reason VARCHAR(32) NOT NULL,
  created_at DATETIME NOT NULL,
  KEY ix_stock_goods (goods_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
"""

# The item the shop's order path sells (templates/app/application/shop_order.php.j2: goods 1,
# quantity 1): stocked for every order a test or benchmark places. With a random 0-500 the e2e load
# sold it out after 465 orders and every later order failed with MariaDB error 1690 (the trigger's
# `stock - NEW.quantity` below 0 as an unsigned value), which looked like a failed move.
ORDER_GOODS_ID, ORDER_GOODS_STOCK = 1, 100_000_000

# Created after the data is loaded (as mysqldump also does), so loading does not fire them.
OBJECTS = """\
DELIMITER ;;
CREATE TRIGGER trg_items_after_insert AFTER INSERT ON order_items FOR EACH ROW
BEGIN
  UPDATE goods SET stock = stock - NEW.quantity WHERE id = NEW.goods_id;
  INSERT INTO stock_log (goods_id, delta, reason, created_at)
    VALUES (NEW.goods_id, -NEW.quantity, 'order', NOW());
  UPDATE orders SET total = total + NEW.quantity * NEW.unit_price WHERE id = NEW.order_id;
END;;
CREATE TRIGGER trg_goods_before_update BEFORE UPDATE ON goods FOR EACH ROW
BEGIN
  SET NEW.updated_at = NOW();
END;;
CREATE FUNCTION order_total(p_order INT UNSIGNED) RETURNS DECIMAL(12,2)
  READS SQL DATA
BEGIN
  DECLARE t DECIMAL(12,2);
  SELECT COALESCE(SUM(quantity * unit_price), 0) INTO t FROM order_items WHERE order_id = p_order;
  RETURN t;
END;;
CREATE PROCEDURE place_order(IN p_user INT UNSIGNED, IN p_goods INT UNSIGNED, IN p_qty INT,
                             OUT p_order INT UNSIGNED)
  MODIFIES SQL DATA
BEGIN
  DECLARE v_price DECIMAL(10,2);
  SELECT price INTO v_price FROM goods WHERE id = p_goods;
  INSERT INTO orders (user_id, order_no, status, created_at)
    VALUES (p_user, CONCAT('P', LPAD(FLOOR(RAND() * 1e18), 19, '0')), 'pending', NOW());
  SET p_order = LAST_INSERT_ID();
  INSERT INTO order_items (order_id, goods_id, quantity, unit_price)
    VALUES (p_order, p_goods, p_qty, v_price);
END;;
CREATE EVENT ev_cancel_stale_orders ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 03:00:00'
  ON COMPLETION PRESERVE DISABLE
  DO UPDATE orders SET status = 'cancelled'
     WHERE status = 'pending' AND created_at < NOW() - INTERVAL 30 DAY;;
DELIMITER ;
CREATE VIEW v_order_summary AS
  SELECT o.id, o.order_no, u.username, o.status, o.total, COUNT(i.id) AS items
  FROM orders o JOIN users u ON u.id = o.user_id LEFT JOIN order_items i ON i.order_id = o.id
  GROUP BY o.id, o.order_no, u.username, o.status, o.total;
"""


def _q(value) -> str:
    """A SQL literal (strings are escaped for the default sql_mode; bytes become X'..')."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'" if value else "''"
    if isinstance(value, (int, float)):
        return str(value)
    s = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "'" + s + "'"


def _dt(rng: random.Random, year_from: int = 2019) -> str:
    return "%04d-%02d-%02d %02d:%02d:%02d" % (
        rng.randint(year_from, 2024), rng.randint(1, 12), rng.randint(1, 28),
        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
    )


def _inserts(table: str, cols: list[str], rows: Iterable[tuple], batch_bytes: int = 512_000
             ) -> Iterator[str]:
    head = f"INSERT INTO {table} ({', '.join(cols)}) VALUES\n"
    buf: list[str] = []
    size = 0
    for row in rows:
        tup = "(" + ",".join(_q(v) for v in row) + ")"
        buf.append(tup)
        size += len(tup)
        if size >= batch_bytes:
            yield head + ",\n".join(buf) + ";\n"
            buf, size = [], 0
    if buf:
        yield head + ",\n".join(buf) + ";\n"


def counts(rows: int) -> dict[str, int]:
    """Row counts per table for ``--rows`` (stock_log starts empty: only the trigger writes it)."""
    users = max(rows, 1)
    return {
        "categories": len(_CATEGORIES),
        "users": users,
        "goods": max(users // 2, 1),
        "orders": users * 2,
        "stock_log": 0,
    }


def generate(out: TextIO, rows: int, seed: int = 1, database: str | None = None,
             blob_kb: int = 24) -> None:
    """Write the whole dataset as SQL to ``out``. Deterministic for (rows, seed, blob_kb)."""
    rng = random.Random(seed)
    n = counts(rows)
    w = out.write
    w("-- webha sample shop (webha/shopdata.py): rows=%d seed=%d blob_kb=%d\n" % (rows, seed, blob_kb))
    w("SET NAMES utf8mb4;\nSET foreign_key_checks = 0;\nSET unique_checks = 0;\n")
    w("SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_TRANS_TABLES';\n")
    if database:
        w(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n")
        w(f"USE `{database}`;\n")
    w(SCHEMA)
    w("START TRANSACTION;\n")

    for chunk in _inserts("categories", ["id", "parent_id", "name", "sort"],
                          ((i + 1, p, name, i * 10) for i, (name, p) in enumerate(_CATEGORIES))):
        w(chunk)

    def users() -> Iterator[tuple]:
        for i in range(1, n["users"] + 1):
            nick = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.randint(1, 2)))
            if i % 7 == 0:
                nick += rng.choice(_EMOJI)
            email = None if i % 5 == 0 else f"user{i}@example.cn"
            avatar = rng.randbytes(rng.randint(1024, 8192)) if i % 10 == 0 else None
            last = None if i % 3 == 0 else _dt(rng, 2023)
            pw = "$2y$10$" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789./") for _ in range(53))
            bal = "%d.%02d" % (rng.randint(0, 5000), rng.randint(0, 99))
            yield (i, f"u{i:07d}", email, nick if i % 11 else None, pw, bal, avatar, _dt(rng), last)

    for chunk in _inserts("users", ["id", "username", "email", "nickname", "password_hash", "balance",
                                    "avatar", "created_at", "last_login"], users()):
        w(chunk)

    leaf_cats = [i + 1 for i, (_, p) in enumerate(_CATEGORIES) if p is not None]
    prices: list[str] = []

    def goods() -> Iterator[tuple]:
        for i in range(1, n["goods"] + 1):
            name = "".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 4))) + f" #{i}"
            desc = None if i % 9 == 0 else "，".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 40))) + "。\n规格：标准"
            price = "%d.%02d" % (rng.randint(1, 2999), rng.randint(0, 99))
            prices.append(price)
            lo = max(blob_kb * 1024 // 4, 1)
            image = rng.randbytes(rng.randint(lo, 2 * blob_kb * 1024 - lo)) if i % 13 else None
            upd = None if i % 4 else _dt(rng, 2024)
            stock = rng.randint(0, 500)  # drawn for every item: the rest of the sample stays as it was
            if i == ORDER_GOODS_ID:
                stock = ORDER_GOODS_STOCK
            yield (i, rng.choice(leaf_cats), name, desc, price, stock, int(i % 17 != 0),
                   image, _dt(rng), upd)

    for chunk in _inserts("goods", ["id", "category_id", "name", "description", "price", "stock",
                                    "on_sale", "image", "created_at", "updated_at"], goods(),
                          batch_bytes=2_000_000):
        w(chunk)

    items: list[tuple] = []

    def orders() -> Iterator[tuple]:
        item_id = 0
        for i in range(1, n["orders"] + 1):
            status = rng.choice(_STATUSES)
            total = 0
            for _ in range(rng.randint(1, 4)):
                g = rng.randint(1, n["goods"])
                qty = rng.randint(1, 5)
                item_id += 1
                items.append((item_id, i, g, qty, prices[g - 1]))
                total += qty * int(prices[g - 1].replace(".", ""))
            remark = None if i % 4 else rng.choice(["尽快发货", "请用顺丰", "送人的，包装好看点 🎁", "It's a gift"])
            created = _dt(rng)
            paid = None if status in ("pending", "cancelled") else created
            yield (i, rng.randint(1, n["users"]), "D%019d" % i, status, "%d.%02d" % divmod(total, 100),
                   remark, created, paid)

    for chunk in _inserts("orders", ["id", "user_id", "order_no", "status", "total", "remark",
                                     "created_at", "paid_at"], orders()):
        w(chunk)
    for chunk in _inserts("order_items", ["id", "order_id", "goods_id", "quantity", "unit_price"], items):
        w(chunk)
    w("COMMIT;\n")
    w(OBJECTS)
    w("SET foreign_key_checks = 1;\nSET unique_checks = 1;\n")


def rows_for_mb(mb: float) -> int:
    return max(int(mb * 1024 * 1024 / _BYTES_PER_ROW), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m webha.shopdata", description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, default=1000, help="number of users (default 1000)")
    size.add_argument("--target-mb", type=float, help="pick --rows for about this many MiB of data")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--blob-kb", type=int, default=24, help="average goods image size in KiB")
    ap.add_argument("--database", help="also emit CREATE DATABASE <name> and USE <name>")
    args = ap.parse_args(argv)
    rows = rows_for_mb(args.target_mb) if args.target_mb else args.rows
    generate(sys.stdout, rows, seed=args.seed, database=args.database, blob_kb=args.blob_kb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
