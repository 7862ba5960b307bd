/**
 * The example flow, against a live system: register a fresh user, record a few scans, read
 * the profile with the last consistency token, and page through the activity history.
 *
 *   COMMAND_API_URL=http://127.0.0.1:8081 QUERY_API_URL=http://127.0.0.1:8082 npm run flow
 *
 * Exits non-zero when anything differs from what the API promises. Uses only what the committed
 * OpenAPI documents declare, through the generated types.
 */
import { CONSISTENCY_HEADER, CONSISTENCY_TOKEN_HEADER, commandApi, queryApi } from "../src/index.js";

const SCANS = 3;
const PAGE_SIZE = 2;
const MAX_PAGES = 100;

class Mismatch extends Error {}

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Mismatch(what);
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Mismatch(`${name} is not set`);
  return value;
}

/** What went wrong with a call: its status and problem+json body. */
function failed(call: string, response: Response, error: unknown): string {
  return `${call}: HTTP ${response.status} ${JSON.stringify(error ?? null)}`;
}

function consistencyToken(call: string, response: Response): string {
  const token = response.headers.get(CONSISTENCY_TOKEN_HEADER);
  check(!!token, `${call}: no ${CONSISTENCY_TOKEN_HEADER} header`);
  return token;
}

async function main(): Promise<void> {
  const commandUrl = env("COMMAND_API_URL");
  const queryUrl = env("QUERY_API_URL");

  // 1. Register a fresh user.
  const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const username = `ts_${suffix}`;
  const registered = await commandApi(commandUrl).POST("/api/v1/auth/register", {
    body: { username, email: `${username}@example.com`, password: `flow-${suffix}-1` },
  });
  check(registered.response.status === 201 && !!registered.data,
    failed("POST /api/v1/auth/register", registered.response, registered.error));
  let token = consistencyToken("POST /api/v1/auth/register", registered.response);
  const accessToken = registered.data.access_token;
  console.log(`registered ${username}`);

  // 2. Record a few scans.
  const commands = commandApi(commandUrl, accessToken);
  for (let i = 1; i <= SCANS; i++) {
    const scan = await commands.POST("/api/v1/scans", {
      body: { category: "plastic", item_name: `bottle ${i}` },
    });
    check(scan.response.status === 202 && !!scan.data, failed("POST /api/v1/scans", scan.response, scan.error));
    check(scan.data.scan_id.length > 0, "POST /api/v1/scans: empty scan_id");
    token = consistencyToken("POST /api/v1/scans", scan.response);
  }
  console.log(`recorded ${SCANS} scans`);

  // 3. Read the profile, waiting for the last write.
  const queries = queryApi(queryUrl, accessToken);
  const me = await queries.GET("/api/v1/users/me", {
    params: { header: { "x-consistency-token": token } },
  });
  check(me.response.status === 200 && !!me.data, failed("GET /api/v1/users/me", me.response, me.error));
  const consistency = me.response.headers.get(CONSISTENCY_HEADER);
  check(consistency === "fresh", `GET /api/v1/users/me: ${CONSISTENCY_HEADER} is ${consistency}, not fresh`);
  check(me.data.total_scans === SCANS, `GET /api/v1/users/me: total_scans ${me.data.total_scans}, sent ${SCANS}`);
  console.log(`profile: total_scans ${me.data.total_scans} (${CONSISTENCY_HEADER}: ${consistency})`);

  // 4. Page through the activity history, following next_cursor until null.
  let cursor: string | undefined;
  let pages = 0;
  let items = 0;
  let scanItems = 0;
  do {
    const page = await queries.GET("/api/v1/users/me/activities", {
      params: {
        query: { limit: PAGE_SIZE, cursor },
        header: { "x-consistency-token": token },
      },
    });
    check(page.response.status === 200 && !!page.data,
      failed("GET /api/v1/users/me/activities", page.response, page.error));
    pages++;
    check(page.data.items.length <= PAGE_SIZE,
      `activities page ${pages}: ${page.data.items.length} items, limit ${PAGE_SIZE}`);
    check(page.data.next_cursor !== undefined, `activities page ${pages}: no next_cursor field`);
    check(page.data.next_cursor === null || page.data.items.length > 0,
      `activities page ${pages}: empty page with a next_cursor`);
    items += page.data.items.length;
    scanItems += page.data.items.filter((a) => a.action === "scan").length;
    cursor = page.data.next_cursor ?? undefined;
    check(pages < MAX_PAGES || cursor === undefined, `activities: still a next_cursor after ${MAX_PAGES} pages`);
  } while (cursor !== undefined);
  check(scanItems === SCANS, `activities: ${scanItems} scans listed, sent ${SCANS}`);

  console.log(
    `summary: user ${username}, ${SCANS} scans sent, profile total_scans ${me.data.total_scans}, ` +
      `${items} activities (${scanItems} scans) over ${pages} pages of ${PAGE_SIZE}`,
  );
}

main().then(
  () => console.log("flow: OK"),
  (err: unknown) => {
    const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : "";
    console.error(`flow: FAILED: ${err instanceof Error ? err.message : String(err)}${cause}`);
    process.exit(1);
  },
);
