import { MysqlToolSession, parseMysqlUrl, quoteIdent } from '../core/engines/mysql/connection';

/**
 * Sample data for the MariaDB demo and benchmark: a small shop (customers, orders with a foreign
 * key and a trigger, a ledger) plus the content that breaks naive MySQL backup tools — 4-byte
 * utf8mb4 text, BLOBs holding every byte value, DECIMAL(65,30), JSON, spatial values, virtual and
 * stored generated columns, a partitioned table, TIMESTAMPs written under a session time zone
 * other than the server's, a view, a procedure, a function and an event. Bulk rows come from
 * MariaDB's Sequence engine (seq_1_to_N), so loading stays inside the server.
 */
export interface MariadbSampleOptions {
  /** Rows in `orders` (customers get a tenth, at least 100). @default 100000 */
  readonly orders?: number;
  /** Bytes of incompressible-ish text per order row (the `note` column), for size. @default 0 */
  readonly noteBytes?: number;
}

const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex');

function schema(): string {
  return `
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(120) NOT NULL,
  signed_up TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  prefs JSON,
  email_domain VARCHAR(120) AS (SUBSTRING_INDEX(email, '@', -1)) STORED,
  name_length INT AS (CHAR_LENGTH(name)) VIRTUAL,
  KEY (email_domain)
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status ENUM('new', 'paid', 'shipped', 'returned') NOT NULL,
  placed DATETIME(6) NOT NULL,
  note TEXT,
  FOREIGN KEY (customer_id) REFERENCES customers (id),
  KEY (placed)
) ENGINE=InnoDB;
CREATE TABLE order_audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT NOT NULL, what VARCHAR(20) NOT NULL) ENGINE=InnoDB;
CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW
  INSERT INTO order_audit (order_id, what) VALUES (NEW.id, CONCAT(OLD.status, '>', NEW.status));
CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, amount DECIMAL(65,30) NOT NULL, memo VARCHAR(200) CHARACTER SET utf8mb4) ENGINE=InnoDB;
CREATE TABLE attachments (id INT PRIMARY KEY, body LONGBLOB, digest BINARY(32)) ENGINE=InnoDB;
CREATE TABLE stores (id INT PRIMARY KEY, name VARCHAR(80) NOT NULL, location POINT NOT NULL, area POLYGON, SPATIAL INDEX (location)) ENGINE=InnoDB;
CREATE TABLE readings (id BIGINT NOT NULL, taken DATE NOT NULL, value DOUBLE, PRIMARY KEY (id, taken))
  PARTITION BY RANGE (YEAR(taken)) (PARTITION p2025 VALUES LESS THAN (2026), PARTITION p2026 VALUES LESS THAN (2027), PARTITION pmax VALUES LESS THAN MAXVALUE);
CREATE VIEW customer_totals AS SELECT c.id, c.name, COUNT(o.id) AS orders, IFNULL(SUM(o.amount), 0) AS total FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name;
DELIMITER $$
CREATE PROCEDURE pay_order(IN o BIGINT) BEGIN UPDATE orders SET status = 'paid' WHERE id = o AND status = 'new'; END$$
CREATE FUNCTION with_vat(x DECIMAL(12,2)) RETURNS DECIMAL(12,2) DETERMINISTIC RETURN ROUND(x * 1.2, 2)$$
DELIMITER ;
CREATE EVENT expire_new_orders ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DO UPDATE orders SET status = 'returned' WHERE status = 'new' AND placed < NOW() - INTERVAL 1 YEAR;
`;
}

function rows(orders: number, noteBytes: number): string {
  const customers = Math.max(100, Math.floor(orders / 10));
  // Distinct hex digests per row: about 2:1 under zstd, like real text (one repeated digest would be 16:1).
  const digests = Array.from({ length: Math.ceil(noteBytes / 129) }, (_, i) => `SHA2(CONCAT(seq, '-${i}'), 512)`);
  const note = noteBytes > 0 ? `LEFT(CONCAT_WS(' ', ${digests.join(', ')}), ${noteBytes})` : `CONCAT('order ', seq)`;
  return `
SET NAMES utf8mb4;
INSERT INTO customers (name, email, signed_up, prefs)
  SELECT CONCAT(ELT(1 + seq % 5, 'Zoë', 'Jürgen', '🦊 Fox', '日本 Tarō', 'Ærø'), ' ', seq), CONCAT('c', seq, '@', ELT(1 + seq % 3, 'example.com', 'exämple.org', 'mail.test')),
         TIMESTAMP('2025-01-01') + INTERVAL seq MINUTE, JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', seq % 7), 'emoji', '😀')
    FROM seq_1_to_${customers};
INSERT INTO orders (customer_id, amount, status, placed, note)
  SELECT 1 + seq % ${customers}, (seq % 100000) / 100, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'returned'),
         TIMESTAMP('2025-06-01') + INTERVAL seq SECOND + INTERVAL seq % 1000000 MICROSECOND, ${note}
    FROM seq_1_to_${orders};
INSERT INTO ledger (amount, memo) VALUES
  (12345678901234567890123456789012345.123456789012345678901234567890, '🦊 the biggest'), (-0.000000000000000000000000000001, 'the smallest'), (0, NULL);
INSERT INTO attachments VALUES (1, UNHEX('${EVERY_BYTE}'), UNHEX(SHA2(UNHEX('${EVERY_BYTE}'), 256))), (2, '', NULL), (3, NULL, NULL);
INSERT INTO attachments SELECT 3 + seq, RANDOM_BYTES(1024), NULL FROM seq_1_to_200;
INSERT INTO stores VALUES
  (1, 'Harbour', ST_GeomFromText('POINT(10.75 59.91)'), ST_GeomFromText('POLYGON((10 59,11 59,11 60,10 60,10 59))')),
  (2, 'Pier', POINT(-0.5, 51.5), NULL);
INSERT INTO readings SELECT seq, DATE('2025-01-01') + INTERVAL (seq % 700) DAY, seq / 7 FROM seq_1_to_${Math.max(1000, Math.floor(orders / 20))};
SET time_zone = '+05:30';
UPDATE customers SET signed_up = '2025-03-30 02:30:00.123' WHERE id = 1;
SET time_zone = DEFAULT;
`;
}

/** Loads the sample into the (existing, empty) database the URL names. */
export async function loadSampleMariadbData(url: string, options: MariadbSampleOptions = {}): Promise<void> {
  const ep = parseMysqlUrl(url, 'sample data');
  const session = await MysqlToolSession.open(ep);
  try {
    // 4-byte characters need utf8mb4; the server's default may be latin1 or utf8mb3.
    await session.query(`ALTER DATABASE ${quoteIdent(ep.database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`, 'sample data');
    await session.query(schema(), 'sample data', ep.database);
    await session.query(rows(options.orders ?? 100_000, options.noteBytes ?? 0), 'sample data', ep.database);
  } finally {
    await session.close();
  }
}
