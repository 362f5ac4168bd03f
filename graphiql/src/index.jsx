// Assay's GraphiQL: the IDE, the explorer plugin and a graphql-ws client in one offline bundle.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { GraphiQL } from "graphiql";
import React from "react";
import { createRoot } from "react-dom/client";

import "graphiql/graphiql.css";
import "@graphiql/plugin-explorer/dist/style.css";

// The page (graph/graphiql.py) describes the endpoint and the saved operations as JSON, so
// changing an example does not need a rebuild.
const config = JSON.parse(document.getElementById("assay-graphiql-config").textContent);

const endpoint = new URL(config.endpoint, window.location.href);
const subscriptionEndpoint = new URL(endpoint);
subscriptionEndpoint.protocol = endpoint.protocol === "https:" ? "wss:" : "ws:";

// graphql-ws gets the headers pane's contents as connection_init's payload, so the
// Authorization header authenticates subscriptions exactly as it does HTTP requests.
const fetcher = createGraphiQLFetcher({
  url: endpoint.href,
  subscriptionUrl: subscriptionEndpoint.href,
});

const explorer = explorerPlugin({ showAttribution: false });

createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    plugins: [explorer],
    defaultTabs: config.tabs,
    defaultHeaders: config.headers,
    defaultEditorToolsVisibility: "headers",
    shouldPersistHeaders: false,
  }),
);
