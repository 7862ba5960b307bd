/**
 * Typed clients for EcoEco's two HTTP APIs.
 *
 * The types in `./generated/` are produced by openapi-typescript from the committed OpenAPI
 * documents (`docs/openapi/command-api.json`, `docs/openapi/query-api.json`); `npm run generate`
 * rewrites them. The runtime is openapi-fetch: `client.GET(path, {params})`, `client.POST(path,
 * {body})`, each answering `{data, error, response}` where `data` is typed by the 2xx schema
 * and `error` by the declared error responses (problem+json).
 */
import createClient, { type Client } from "openapi-fetch";
import type {
  components as CommandApiComponents,
  operations as CommandApiOperations,
  paths as CommandApiPaths,
} from "./generated/command-api.js";
import type {
  components as QueryApiComponents,
  operations as QueryApiOperations,
  paths as QueryApiPaths,
} from "./generated/query-api.js";

export type {
  CommandApiComponents,
  CommandApiOperations,
  CommandApiPaths,
  QueryApiComponents,
  QueryApiOperations,
  QueryApiPaths,
};

/** The command-api's schemas by name, e.g. `CommandApiSchemas["ScanRequest"]`. */
export type CommandApiSchemas = CommandApiComponents["schemas"];
/** The query-api's schemas by name, e.g. `QueryApiSchemas["Profile"]`. */
export type QueryApiSchemas = QueryApiComponents["schemas"];

/** A client for the command-api (writes): register, log in, scans, recycles, ... */
export type CommandApi = Client<CommandApiPaths>;
/** A client for the query-api (reads): profile, activities, leaderboards, places, ... */
export type QueryApi = Client<QueryApiPaths>;

/**
 * Read your writes: every command response carries this header; send its value back on a
 * query (the operations declare it as a header parameter) and the query waits until that
 * write is visible.
 */
export const CONSISTENCY_TOKEN_HEADER = "x-consistency-token";
/** The query's answer to a consistency token: `fresh`, or `stale` when the wait ran out. */
export const CONSISTENCY_HEADER = "x-consistency";

function options(baseUrl: string, token?: string) {
  return {
    baseUrl: baseUrl.replace(/\/+$/, ""),
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  };
}

/**
 * A command-api client. `baseUrl` is the server's origin (paths already start with
 * `/api/v1`); `token` is an access token, sent as `Authorization: Bearer ...`.
 */
export function commandApi(baseUrl: string, token?: string): CommandApi {
  return createClient<CommandApiPaths>(options(baseUrl, token));
}

/**
 * A query-api client. `baseUrl` is the server's origin (paths already start with `/api/v1`);
 * `token` is an access token, sent as `Authorization: Bearer ...`.
 */
export function queryApi(baseUrl: string, token?: string): QueryApi {
  return createClient<QueryApiPaths>(options(baseUrl, token));
}
