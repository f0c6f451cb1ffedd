"""Hostile segment expressions, shared by the tests of every segment parser and backend.

``INJECTIONS`` must all be refused by ``Segment.parse``; an error message must
never repeat any of ``SECRET_MARKERS`` found in the input. ``HARMLESS_AS_DATA``
look hostile but are valid segments whose odd parts are only data (a string
literal or a quoted column name): they must compile to bound parameters and
quoted identifiers only.
"""

#: Fragments that stand for secrets (paths, key names, environment variables): never echoed in an error.
SECRET_MARKERS = ("/etc/passwd", "secrets/", "s3_secret_access_key", "HOME", "signing.key", "AWS_SECRET",
                  "hunter2")

INJECTIONS = [
    # subqueries and set operations
    "age < (SELECT max(x) FROM projects)",
    "x IN (SELECT id FROM models)",
    "x = 1 UNION SELECT * FROM projects",
    "x = 1 OR EXISTS (SELECT 1)",
    "sex = 'F' AND (SELECT count(*) FROM read_text('secrets/*')) > 0",
    "x = 'a' OR x IN ('a', (SELECT 'b'))",
    # files, globs, settings, environment, sequences, extensions
    "read_text('/etc/passwd') IS NOT NULL",
    "glob('*') IS NOT NULL",
    "read_csv_auto('secrets/signing.key') IS NOT NULL",
    "x = 1 OR x = read_parquet('secrets/data.parquet')",
    "nextval('project_ids') > 0",
    "current_setting('s3_secret_access_key') IS NOT NULL",
    "getenv('HOME') IS NOT NULL",
    "x = 1 or load_extension('httpfs')",
    "sex = 'F' OR sex = 'M' OR pg_sleep(10) IS NULL",
    "COPY projects TO 'secrets/out.csv'",
    "x = 'a' ; ATTACH 'secrets/other.db'",
    # tautologies, comments, statement breaks
    "sex = 'a' OR 1=1 --",
    "sex = 'a' /* */ OR TRUE",
    "sex = 'a' -- AWS_SECRET_ACCESS_KEY",
    "x = 1 OR TRUE",
    "1 = 1",
    "x = 1 OR 'a' = 'a'",
    "x = 1; DROP TABLE projects",
    "x = 1 ; SELECT getenv('AWS_SECRET_ACCESS_KEY')",
    # quote tricks
    "sex = 'Female' OR '1'='1'",
    "sex = 'F\\' OR 1=1 --",
    "sex = 'a' OR 'hunter2' = sex",
    "sex = 'unterminated OR 1=1 --hunter2",
    "x = E'\\x27' OR TRUE",
    "\"x\" = 1 -- \" trailing comment",
    "x = 'a' || 'b'",
    # parenthesis escapes
    "FALSE) OR (TRUE",
    "x = 1) OR (1 = 1",
    "x = 1 OR y = 2)",
    "((x = 1)",
    # expressions, casts, operators outside the language
    "x = CAST('1' AS INTEGER)",
    "x::VARCHAR = '1'",
    "x LIKE '%hunter2%'",
    "x = 'a' COLLATE nocase",
    "x = -(1)",
    "x = 1 + 1",
    "x = $1",
    "x = ?",
    "x = NaN",
    "x = 1e999",
    "x = 1 \x00 OR TRUE",
    # unicode look-alikes
    "sex \uff1d 'F'",
    "sex = \u2018F\u2019",
    "sex = 'F' OR \uff08TRUE\uff09",
    "x = 'F' OR \u02bca\u02bc = \u02bca\u02bc",
    "x \u2260 1",
    "x \u2264 1",
    "x = 1 \u2028OR TRUE",
    "\u00a0x = 1",
    "\uff53\uff45\uff58 = 'F'",
    "sex = \u201cF\u201d",
]

#: Valid segments whose hostile-looking parts are string literals or quoted column names: data, never SQL.
HARMLESS_AS_DATA = [
    "sex = 'Female'' OR ''1''=''1'",
    "sex = 'a'' OR 1=1 --'",
    "sex = '; DROP TABLE projects; --'",
    "sex = '/* */ OR TRUE'",
    "sex = 'F\\'",
    "note = 'read_text(''/etc/passwd'')'",
    "sex in ('a', ''')--', '\u2018F\u2019')",
    "\"x) OR (TRUE\" = 1",
    "\"a\"\"; DROP TABLE projects; --\" = 'b'",
]
