// Runs every graphql-http server audit against the GraphQL endpoint given as the first
// argument and prints the results as JSON: [{id, name, status, reason?}], status ok|notice|warn|error.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node http_audit.mjs <graphql endpoint url>');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.responseStatus = result.response ? result.response.status : null;
  }
  results.push(entry);
}
console.log(JSON.stringify(results, null, 2));
