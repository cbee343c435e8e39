import { DumpSplitter, type DumpPiece } from '../../lib/core/engines/mysql/dump-sections';

// The shape mariadb-dump 10.11 writes with tidemark's flags (rows one per line), trimmed; a MySQL
// style table (all rows on one line); a trigger and a routine whose bodies quote section titles.
const DUMP = `/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: localhost    Database: app
-- ------------------------------------------------------

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=4;

--
-- Table structure for table \`a\`\`b\`
--

DROP TABLE IF EXISTS \`a\`\`b\`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
CREATE TABLE \`a\`\`b\` (
  \`id\` int(11) NOT NULL,
  \`v\` text DEFAULT 'x;',
  PRIMARY KEY (\`id\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table \`a\`\`b\`
--

LOCK TABLES \`a\`\`b\` WRITE;
/*!40000 ALTER TABLE \`a\`\`b\` DISABLE KEYS */;
INSERT INTO \`a\`\`b\` VALUES
(1,'ends like a statement );\\n-- Table structure for table \`z\`'),
(2,'two');
INSERT INTO \`a\`\`b\` VALUES
(3,'three');
/*!40000 ALTER TABLE \`a\`\`b\` ENABLE KEYS */;
UNLOCK TABLES;
/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=\`root\`@\`localhost\`*/ /*!50003 TRIGGER t_bi BEFORE INSERT ON \`a\`\`b\` FOR EACH ROW BEGIN
--
-- Table structure for table \`fake\`
--
SET NEW.v = UPPER(NEW.v); END */;;
DELIMITER ;
/*!50003 SET sql_mode              = @saved_sql_mode */ ;

--
-- Temporary table structure for view \`v\`
--

DROP TABLE IF EXISTS \`v\`;
/*!50001 CREATE VIEW \`v\` AS SELECT
 1 AS \`id\` */;

--
-- Table structure for table \`empty\`
--

DROP TABLE IF EXISTS \`empty\`;
CREATE TABLE \`empty\` (\`id\` int) ENGINE=InnoDB;

--
-- Dumping data for table \`empty\`
--

LOCK TABLES \`empty\` WRITE;
/*!40000 ALTER TABLE \`empty\` DISABLE KEYS */;
/*!40000 ALTER TABLE \`empty\` ENABLE KEYS */;
UNLOCK TABLES;

--
-- Table structure for table \`m\`
--

DROP TABLE IF EXISTS \`m\`;
CREATE TABLE \`m\` (\`id\` int) ENGINE=MyISAM;

--
-- Dumping data for table \`m\`
--

LOCK TABLES \`m\` WRITE;
INSERT INTO \`m\` VALUES (1),(2);
INSERT INTO \`m\` VALUES (3);
UNLOCK TABLES;

--
-- Dumping routines for database 'app'
--
DELIMITER ;;
CREATE DEFINER=\`root\`@\`localhost\` PROCEDURE \`p\`()
BEGIN
-- Table structure for table \`nope\`
SELECT 1;
END ;;
DELIMITER ;

--
-- Final view structure for view \`v\`
--

/*!50001 DROP VIEW IF EXISTS \`v\`*/;
/*!50001 VIEW \`v\` AS select 1 AS \`id\` */;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

-- Dump completed
`;

function split(text: string, chunkSize: number): DumpPiece[] {
  const bytes = Buffer.from(text);
  const s = new DumpSplitter();
  const out: DumpPiece[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) out.push(...s.push(bytes.subarray(i, i + chunkSize)));
  out.push(...s.end());
  return out;
}

const textOf = (p: DumpPiece) => Buffer.concat(p.parts).toString();
const summary = (pieces: DumpPiece[]) => pieces.map((p) => `${p.kind}${p.table === undefined ? '' : ` ${p.table}`}`);

describe('cutting a dump into pieces for parallel loading', () => {
  const pieces = split(DUMP, 1 << 16);

  it('finds the header, each table\'s schema, every INSERT, the table ends, stand-in views and the ordered tail', () => {
    expect(summary(pieces)).toEqual([
      'header',
      'schema a`b',
      'rows a`b',
      'rows a`b',
      'table-end a`b',
      'any',
      'schema empty',
      'schema m',
      'rows m',
      'rows m',
      'table-end m',
      'last',
    ]);
    expect(textOf(pieces[0])).toMatch(/FOREIGN_KEY_CHECKS=0 \*\/;\n-- CHANGE MASTER.*\n\n--\n$/);
    expect(textOf(pieces[1])).toMatch(/^-- Table structure for table `a``b`\n[\s\S]*DISABLE KEYS \*\/;\n$/);
    expect(textOf(pieces[2])).toBe("INSERT INTO `a``b` VALUES\n(1,'ends like a statement );\\n-- Table structure for table `z`'),\n(2,'two');\n");
    expect(textOf(pieces[4])).toMatch(/^\/\*!40000 ALTER TABLE `a``b` ENABLE KEYS \*\/;\n[\s\S]*-- Table structure for table `fake`[\s\S]*DELIMITER ;\n/);
    expect(textOf(pieces[6])).toMatch(/DISABLE KEYS[\s\S]*ENABLE KEYS/); // no rows: the whole table is one piece
    expect(textOf(pieces[8])).toBe('INSERT INTO `m` VALUES (1),(2);\n');
    expect(textOf(pieces[11])).toMatch(/^-- Dumping routines[\s\S]*`nope`[\s\S]*Final view structure[\s\S]*-- Dump completed\n$/);
  });

  it('keeps every byte in order except LOCK TABLES/UNLOCK TABLES', () => {
    expect(pieces.map(textOf).join('')).toBe(DUMP.replace(/^(UN)?LOCK TABLES.*\n/gm, ''));
    for (const p of pieces) expect(p.bytes).toBe(p.parts.reduce((n, b) => n + b.length, 0));
  });

  it.each([1, 2, 3, 5, 7, 64, 1000])('cuts the same pieces whatever the chunk size (%i bytes)', (size) => {
    const small = split(DUMP, size);
    expect(summary(small)).toEqual(summary(pieces));
    expect(small.map(textOf)).toEqual(pieces.map(textOf));
  });

  it('takes a title for a seam only when the statement after it is the one its section starts with', () => {
    // A title between statements that is followed by something else stays a comment of its section.
    const odd = DUMP.replace('--\n-- Temporary table structure for view `v`', '--\n-- Table structure for table `w`\n--\nSELECT 1;\n-- Temporary table structure for view `v`');
    expect(summary(split(odd, 1 << 16))).toEqual(summary(pieces));
  });

  it('sends everything in order through one connection from where the dump stops looking like ours', () => {
    // No section comments (e.g. --compact): nothing is a header to replay on every connection.
    expect(summary(split('SET NAMES utf8mb4;\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n', 5))).toEqual(['last']);
    // An unknown line between a table's INSERTs: the rest is one ordered tail, cut at ~1 MiB, none of it lost.
    const odd = DUMP.replace("(2,'two');\n", "(2,'two');\nSELECT 'unexpected';\n");
    const pieces = split(odd, 4096);
    expect(summary(pieces)).toEqual(['header', 'schema a`b', 'rows a`b', 'last']);
    // Only the first table's LOCK TABLES is left out; in the ordered tail the dump runs as written.
    expect(pieces.map(textOf).join('')).toBe(odd.replace(/^LOCK TABLES.*\n/m, ''));
  });

  it('has one header piece and nothing else when the database has no objects', () => {
    const header = DUMP.slice(0, DUMP.indexOf('-- Table structure'));
    expect(summary(split(`${header}-- Dump completed\n`, 10))).toEqual(['header']);
  });
});
