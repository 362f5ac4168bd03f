// PostGraphile 5 over Assay's database, for `python -m bench` (bench/postgraphile.py copies
// this file beside the node_modules it installs). Usage: node server.mjs PORT DATABASE_URL
//
// Besides /graphql it serves /healthz and /metrics with the two counters the benchmark reads
// from every server under Assay's names: requests answered and SQL statements sent (every
// query() of the pg client, transaction control included).
import { createServer } from "node:http";
import pg from "pg";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";

const [port, connectionString] = process.argv.slice(2);
let statements = 0;
let requests = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(...args) {
  statements += 1;
  return query.apply(this, args);
};

// PostGraphile finds relations in foreign-key constraints. Assay's database checks a
// submission's owner and model (migration 0014) and a result's submission (0015) with
// statement triggers instead, so the relations PostGraphile used to infer
// (User.submissionsByOwnerId, Submission.modelByModelId, Submission.resultsBySubmissionId)
// are declared here as smart tags: the same schema, and the same SQL, as before.
const references = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      submissions: {
        tags: {
          foreignKey: ["(owner_id) references users (id)", "(model_id) references models (id)"],
        },
      },
      results: {
        tags: { foreignKey: ["(submission_id) references submissions (id)"] },
      },
    },
  },
});

const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [references],
  pgServices: [makePgService({ connectionString, schemas: ["public"], poolConfig: { max: 10 } })],
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: { explain: false },
};

const serv = postgraphile(preset).createServ(grafserv);
const handler = serv.createHandler();
const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    return;
  }
  if (req.url === "/metrics") {
    const body =
      "# TYPE assay_graphql_requests_total counter\n" +
      `assay_graphql_requests_total ${requests}\n` +
      "# TYPE assay_db_statements_total counter\n" +
      `assay_db_statements_total ${statements}\n`;
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body);
    return;
  }
  if (req.url === "/graphql") res.once("finish", () => { requests += 1; });
  handler(req, res);
});
server.keepAliveTimeout = 65_000;
await serv.ready();
server.listen(Number(port), "127.0.0.1");
