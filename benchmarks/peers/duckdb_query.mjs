// The DuckDB peer of the lambdamr benchmarks: runs one workload over the same files with the
// same semantics and writes its result to a file the harness compares with lambdamr's output.
//
//   node duckdb_query.mjs wordcount TEXT_DIR OUT            word<TAB>count
//   node duckdb_query.mjs q1 RANKINGS_DIR OUT [MIN_RANK]     pageURL,pageRank   (pageRank > MIN_RANK)
//   node duckdb_query.mjs q2 USERVISITS_DIR OUT [PREFIX]     SUBSTR(sourceIP,1,PREFIX)<TAB>SUM(adRevenue)
//   node duckdb_query.mjs q3 BDB_DIR OUT FROM,TO             sourceIP<TAB>SUM(adRevenue)<TAB>AVG(pageRank)
//                                                            (BDB Query 3: rankings ⋈ uservisits, visitDate in [FROM, TO])
//   node duckdb_query.mjs sort SORT_DIR OUT                  the lines in bytewise order (ORDER BY, binary collation)
//   node duckdb_query.mjs version                            prints DuckDB's version
//
// Options (environment): DUCKDB_THREADS (default 2), DUCKDB_WC_METHOD, the word count's formulation
// (all give the same counts; benchmarks/run times each once and uses the fastest):
//   split         translate \t \v \f \r to spaces, string_split on ' ', drop empty strings (default)
//   split_regex   unnest(string_split_regex(line, '[ \t\n\v\f\r]+')), drop empty strings
//   regexp_table  regexp_split_to_table(line, '[ \t\n\v\f\r]+'), drop empty strings
// Prints one JSON line: {"workload", "rows", "query_ms", "threads", "method", "sql"}.
import { DuckDBInstance } from '@duckdb/node-api';

const [workload, input, out, param] = process.argv.slice(2);
if (workload === 'version') {
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    const rows = await (await con.run('SELECT version()')).getRows();
    console.log(rows[0][0]);
    process.exit(0);
}
if (!workload || !input || !out) {
    console.error('usage: node duckdb_query.mjs wordcount|q1|q2 INPUT_DIR OUT_FILE [PARAM]');
    process.exit(2);
}
const threads = process.env.DUCKDB_THREADS || '2';
const q = (s) => "'" + String(s).replaceAll("'", "''") + "'";
const files = q(input.replace(/\/+$/, '') + '/part-*');

// The same whitespace set as lambdamr's wordcount (and Hadoop's): space \t \n \v \f \r.
const WS = "'[ \\t\\n\\v\\f\\r]+'";
let sql;
if (workload === 'wordcount') {
    // Each line as one VARCHAR: a delimiter byte that never occurs in the text, no quoting.
    // (read_text + one regex per file was 25x slower.)
    const lines = `SELECT line FROM read_csv(${files}, columns={'line': 'VARCHAR'}, delim='\\x01', quote='',
                                             escape='', header=false, auto_detect=false, strict_mode=false,
                                             new_line='\\n')`;
    const method = process.env.DUCKDB_WC_METHOD || 'split';
    const formulations = {
        split: `unnest(string_split(translate(line, chr(9) || chr(11) || chr(12) || chr(13), '    '), ' '))`,
        split_regex: `unnest(string_split_regex(line, ${WS}))`,
        regexp_table: `regexp_split_to_table(line, ${WS})`,
    };
    const words = formulations[method];
    if (!words) {
        console.error(`DUCKDB_WC_METHOD=${method}: expected one of ${Object.keys(formulations).join(', ')}`);
        process.exit(2);
    }
    sql = `COPY (SELECT word, count(*) AS n
                 FROM (SELECT ${words} AS word FROM (${lines}))
                 WHERE word <> '' GROUP BY word)
           TO ${q(out)} (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')`;
} else if (workload === 'q1') {
    const min = Number(param ?? 1000);
    sql = `COPY (SELECT pageURL, pageRank
                 FROM read_csv(${files}, header=false, delim=',', quote='', escape='', auto_detect=false,
                               columns={'pageURL': 'VARCHAR', 'pageRank': 'BIGINT', 'avgDuration': 'BIGINT'})
                 WHERE pageRank > ${min})
           TO ${q(out)} (FORMAT csv, DELIMITER ',', HEADER false, QUOTE '')`;
} else if (workload === 'q2') {
    const prefix = Number(param ?? 8);
    sql = `COPY (SELECT substr(sourceIP, 1, ${prefix}) AS k, sum(adRevenue) AS s
                 FROM read_csv(${files}, header=false, delim=',', quote='', escape='', auto_detect=false,
                               columns={'sourceIP': 'VARCHAR', 'destURL': 'VARCHAR', 'visitDate': 'DATE',
                                        'adRevenue': 'DOUBLE', 'userAgent': 'VARCHAR', 'countryCode': 'VARCHAR',
                                        'languageCode': 'VARCHAR', 'searchWord': 'VARCHAR', 'duration': 'BIGINT'})
                 GROUP BY k)
           TO ${q(out)} (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')`;
} else if (workload === 'q3') {
    const [from, to] = String(param ?? '1980-01-01,1980-04-01').split(',');
    const dir = input.replace(/\/+$/, '');
    sql = `COPY (SELECT UV.sourceIP, sum(UV.adRevenue) AS totalRevenue, avg(R.pageRank) AS avgPageRank
                 FROM read_csv(${q(dir + '/rankings/part-*')}, header=false, delim=',', quote='', escape='',
                               auto_detect=false,
                               columns={'pageURL': 'VARCHAR', 'pageRank': 'BIGINT', 'avgDuration': 'BIGINT'}) R
                 JOIN read_csv(${q(dir + '/uservisits/part-*')}, header=false, delim=',', quote='', escape='',
                               auto_detect=false,
                               columns={'sourceIP': 'VARCHAR', 'destURL': 'VARCHAR', 'visitDate': 'DATE',
                                        'adRevenue': 'DOUBLE', 'userAgent': 'VARCHAR', 'countryCode': 'VARCHAR',
                                        'languageCode': 'VARCHAR', 'searchWord': 'VARCHAR', 'duration': 'BIGINT'}) UV
                   ON R.pageURL = UV.destURL
                 WHERE UV.visitDate BETWEEN DATE ${q(from)} AND DATE ${q(to)}
                 GROUP BY UV.sourceIP)
           TO ${q(out)} (FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')`;
} else if (workload === 'sort') {
    // Each line as one VARCHAR (a delimiter byte that never occurs), sorted with the binary collation.
    sql = `COPY (SELECT line FROM read_csv(${files}, columns={'line': 'VARCHAR'}, delim='\x01', quote='',
                                           escape='', header=false, auto_detect=false, strict_mode=false)
                 ORDER BY line)
           TO ${q(out)} (FORMAT csv, DELIMITER '\x01', HEADER false, QUOTE '')`;
} else {
    console.error(`unknown workload '${workload}': expected wordcount, q1, q2, q3 or sort`);
    process.exit(2);
}

const db = await DuckDBInstance.create(':memory:', { threads });
const con = await db.connect();
const t0 = performance.now();
const res = await con.run(sql);
const ms = performance.now() - t0;
let rows = null;
try {
    rows = Number((await res.getRows())[0]?.[0] ?? null);
} catch {}
console.log(JSON.stringify({ workload, rows, query_ms: Math.round(ms * 10) / 10, threads: Number(threads),
                             method: workload === 'wordcount' ? (process.env.DUCKDB_WC_METHOD || 'split') : null,
                             sql: sql.replace(/\s+/g, ' ').trim() }));
