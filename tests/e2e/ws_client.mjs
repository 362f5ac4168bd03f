// The npm graphql-ws client as a peer of Assay's WebSocket endpoint, for test_ws_protocol.py.
//
// node ws_client.mjs URL TOKEN QUERY TAKE
//
// Connects with {"Authorization": "Bearer TOKEN"} as connection_init's payload (no bearer when
// TOKEN is "-"), subscribes to QUERY and, after TAKE `next` results, completes the
// subscription from the client side. It keeps the connection alive with pings meanwhile. Every
// step is printed as one JSON line on stdout: connected, ping/pong (with `received`), message
// (each one the server sent), next, error, complete (the server ended the stream), unsubscribed,
// closed (with the close code). Exits 0 once the connection is closed.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, query, takeArg] = process.argv.slice(2);
const take = Number(takeArg ?? "1");
const print = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

let done;
const finished = new Promise((resolve) => {
  done = resolve;
});

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token === "-" ? {} : { Authorization: `Bearer ${token}` },
  lazy: false,
  keepAlive: 200,
  retryAttempts: 0,
  on: {
    connected: () => print({ event: "connected" }),
    ping: (received) => print({ event: "ping", received }),
    pong: (received) => print({ event: "pong", received }),
    message: (message) => print({ event: "message", type: message.type }),
    closed: (event) => {
      print({ event: "closed", code: event.code, reason: event.reason });
      done();
    },
  },
  onNonLazyError: () => {},
});

let received = 0;
const unsubscribe = client.subscribe(
  { query },
  {
    next: (payload) => {
      print({ event: "next", payload });
      received += 1;
      if (received === take) {
        unsubscribe(); // sends `complete`: the client ends the stream
        print({ event: "unsubscribed" });
        // Long enough for a stray `next` to show up if the server ignored the complete.
        setTimeout(() => client.dispose(), 1500);
      }
    },
    error: (error) => {
      print({ event: "error", error: error?.code ?? String(error) });
      client.dispose();
    },
    complete: () => {
      print({ event: "complete" });
      setTimeout(() => client.dispose(), 500);
    },
  },
);

const timeout = setTimeout(() => {
  print({ event: "timeout" });
  process.exit(2);
}, 30_000);
await finished;
clearTimeout(timeout);
process.exit(0);
