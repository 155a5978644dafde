// A Doorstep device written in JavaScript from docs/PROTOCOL.md and docs/SCHEMA.md only, as an
// outside implementer would, with @automerge/automerge and cborg from npm: enrolment (§2.5),
// sync rounds over HTTP (§2.3, §3, §4, §5.2), the scope digest (§5.6.1), the taxonomy (§5.9),
// and documents written the idiomatic Automerge JS way (strings as Text, times as Dates, ids
// from crypto.randomUUID()).
//
//   node client.mjs STATE write --server URL --code CODE   enrol, first sync, write, upload
//   node client.mjs STATE read                             sync again, show what it holds
//
// STATE is a JSON file holding the device between runs (token, actor, cursor, documents and
// their unacknowledged changes). Each command prints one JSON report on stdout; any failed
// check exits non-zero with the reason on stderr.

import * as A from "@automerge/automerge";
import { decode, encode } from "cborg";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const CONTENT_TYPE = "application/vnd.doorstep.v1+cbor";
// §5.2.4: codes that hold a document back instead of stopping the sync.
const HOLD_BACK = new Set(["out_of_scope", "forged_actor", "document_too_large", "invalid_document",
  "malformed_change", "missing_dependencies"]);

// Progress goes to stderr, which the test shows when something fails.
const log = (line) => console.error(`[js] ${line}`);

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

// §4.1: an Id is the 16 bytes of the UUID; documents name themselves in lower-case text.
const idBytes = (uuid) => Buffer.from(uuid.replaceAll("-", ""), "hex");
const idText = (bytes) => {
  const h = Buffer.from(bytes).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const hex = (bytes) => Buffer.from(bytes).toString("hex");
// SCHEMA "text": a scalar string (what the Rust core writes) reads in Automerge JS 3 as an
// ImmutableString object, a Text as a JS string; String() gives the text of either.
const str = (t) => (t === undefined || t === null ? t : String(t));
// SCHEMA "time": integer milliseconds or a timestamp; JS reads the latter as a Date.
const millis = (t) => (t instanceof Date ? t.getTime() : Number(t));

// ---- the device's state, kept between runs -------------------------------------------------

function loadState(file) {
  if (!existsSync(file)) return { cursor: 0, taxonomy: null, docs: new Map() };
  const s = JSON.parse(readFileSync(file, "utf8"));
  const docs = new Map();
  for (const [id, d] of Object.entries(s.docs)) {
    docs.set(id, {
      kind: d.kind,
      doc: A.load(Buffer.from(d.data, "base64"), { actor: s.actor }),
      pending: d.pending.map((c) => new Uint8Array(Buffer.from(c, "base64"))),
    });
  }
  return { ...s, docs };
}

function saveState(file, state) {
  const docs = {};
  for (const [id, d] of state.docs) {
    docs[id] = { kind: d.kind, data: Buffer.from(A.save(d.doc)).toString("base64"),
      pending: d.pending.map((c) => Buffer.from(c).toString("base64")) };
  }
  writeFileSync(file, JSON.stringify({ ...state, docs }, null, 1));
}

const pendingCount = (state) => [...state.docs.values()].reduce((n, d) => n + d.pending.length, 0);

// A local edit: one Automerge change, kept as pending until an ack covers it (§5.2.5).
function edit(state, id, fn) {
  const entry = state.docs.get(id);
  entry.doc = A.change(entry.doc, fn);
  entry.pending.push(A.getLastLocalChange(entry.doc));
}

function create(state, id, kind, initial) {
  const doc = A.from(initial, { actor: state.actor });
  state.docs.set(id, { kind, doc, pending: [A.getLastLocalChange(doc)] });
}

// ---- enrolment (§2.5, §5.1) -----------------------------------------------------------------

async function enrol(state, server, code) {
  state.server = server;
  state.actor = randomBytes(16).toString("hex");
  const res = await fetch(`${server}/v1/enrol`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code, actor: state.actor, device_name: "JS conformance client" }),
  });
  const body = await res.json();
  check(res.status === 200, `enrolment answered ${res.status} ${JSON.stringify(body)}`);
  check(/^dst_[A-Za-z0-9_-]{43}$/.test(body.token), "a token of the documented form");
  Object.assign(state, { token: body.token, member: body.member_id, device: body.device_id, role: body.role });
}

// ---- one sync round (§5.2.1, §5.2.4) --------------------------------------------------------

async function post(state, message) {
  const frame = Buffer.concat([Buffer.from([1]), encode(message)]);
  const res = await fetch(`${state.server}/v1/sync`, {
    method: "POST",
    headers: { authorization: `Bearer ${state.token}`, "content-type": CONTENT_TYPE },
    body: frame,
  });
  check(res.headers.get("content-type") === CONTENT_TYPE, `a frame comes back (got ${res.headers.get("content-type")})`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  check(bytes[0] === 1, "version byte 1");
  return { status: res.status, message: decode(bytes.subarray(1)) };
}

// Every change hash reachable from `heads` in `doc` (the heads included).
function ancestry(doc, heads) {
  const deps = new Map(A.getAllChanges(doc).map((c) => { const d = A.decodeChange(c); return [d.hash, d.deps]; }));
  const seen = new Set();
  const stack = [...heads];
  while (stack.length) {
    const h = stack.pop();
    if (seen.has(h)) continue;
    seen.add(h);
    stack.push(...(deps.get(h) ?? []));
  }
  return seen;
}

// §5.6.1: SHA-256 over (id, number of heads, sorted heads) of every document, in id order.
function digest(state) {
  const sha = createHash("sha256");
  for (const id of [...state.docs.keys()].sort()) {
    const heads = A.getHeads(state.docs.get(id).doc).slice().sort();
    sha.update(idBytes(id));
    sha.update(Buffer.from([Math.min(heads.length, 255)]));
    for (const h of heads) sha.update(Buffer.from(h, "hex"));
  }
  return sha.digest("hex");
}

async function round(state, heldBack, report) {
  const uploaded = [...state.docs.keys()].sort().filter((id) => state.docs.get(id).pending.length && !heldBack.has(id));
  const request = {
    cursor: state.cursor,
    uploads: uploaded.map((id) => ({ doc: idBytes(id), changes: state.docs.get(id).pending })),
    purged: (state.purged ?? []).map(idBytes),
    unsynced: pendingCount(state),
    want_digest: true,
    missing: (state.missing ?? []).map(idBytes),
    // §5.9: a client that ships no taxonomy sends 0 and receives the county's.
    taxonomy_version: state.taxonomy?.version ?? 0,
  };
  const { status, message } = await post(state, { sync: request });
  if (message.error) return { error: { ...message.error, status, doc: message.error.doc && idText(message.error.doc) } };
  check(status === 200 && message.sync, `a sync reply (got ${status} ${Object.keys(message)})`);
  const reply = message.sync;
  log(`round from cursor ${request.cursor}: uploaded ${uploaded.length}, ${reply.acks.length} acks, ` +
    `${reply.docs.length} docs, cursor ${reply.cursor}, more ${reply.more}`);

  // 1. Acks: a pending change is acknowledged if it is one of the heads or an ancestor.
  check(reply.acks.length === uploaded.length, "one ack per uploaded document");
  for (const ack of reply.acks) {
    const id = idText(ack.doc);
    check(uploaded.includes(id), `an ack for a document this round uploaded: ${id}`);
    const entry = state.docs.get(id);
    const covered = ancestry(entry.doc, ack.heads.map(hex));
    const before = entry.pending.length;
    entry.pending = entry.pending.filter((c) => !covered.has(A.decodeChange(c).hash));
    report.acknowledged += before - entry.pending.length;
  }
  state.missing = [];
  state.purged = [];
  // 3. Docs: loadIncremental into the local copy, refused if dependencies are missing.
  for (const data of reply.docs) {
    const id = idText(data.doc);
    const local = state.docs.get(id)?.doc ?? A.init({ actor: state.actor });
    const loaded = A.loadIncremental(local, data.data);
    const missingDeps = A.getMissingDeps(loaded, []);
    const ok = missingDeps.length === 0 && str(loaded.type) === data.kind && str(loaded.id) === id;
    if (!ok) {
      log(`cannot apply ${id} (full: ${data.full}): missing ${missingDeps}, type ${loaded.type}, id ${loaded.id}`);
      state.missing.push(id);
      continue;
    }
    const entry = state.docs.get(id) ?? { kind: data.kind, pending: [] };
    entry.doc = loaded;
    state.docs.set(id, entry);
    report.received.push(id);
  }
  // 4. Purge what left the scope (deferred while it has pending changes).
  for (const raw of reply.purge) {
    const id = idText(raw);
    if (!state.docs.get(id)?.pending.length) { state.docs.delete(id); state.purged.push(id); }
  }
  // §5.9: keep the newer taxonomy.
  if (reply.taxonomy && reply.taxonomy.version > (state.taxonomy?.version ?? 0)) state.taxonomy = reply.taxonomy;
  // 5. Cursor, only after everything above.
  state.cursor = reply.cursor;
  // 8. Digest: comparable when nothing is pending on this side.
  if (reply.digest && !reply.more && pendingCount(state) === 0) report.verified = hex(reply.digest) === digest(state);
  return { more: reply.more || state.missing.length > 0 };
}

// Rounds until nothing more is needed; a permanent refusal naming a document holds it back and
// the round runs again without it (the reference client's behaviour, §5.2.4).
async function sync(state) {
  const report = { acknowledged: 0, received: [], held_back: [], verified: false };
  const heldBack = new Set();
  for (let i = 0; i < 100; i++) {
    const result = await round(state, heldBack, report);
    if (result.error) {
      const e = result.error;
      check(e.doc && HOLD_BACK.has(e.code) && !heldBack.has(e.doc), `refused: ${JSON.stringify(e)}`);
      heldBack.add(e.doc);
      report.held_back.push({ doc: e.doc, code: e.code, status: e.status, message: e.message });
      continue;
    }
    if (!result.more) return report;
  }
  throw new Error("sync did not finish");
}

// ---- what the device writes (SCHEMA.md), the idiomatic JS way --------------------------------

function households(state) {
  return [...state.docs].filter(([, d]) => d.kind === "household").map(([id, d]) => [id, d.doc]);
}

function recordVisit(state, householdId, fields) {
  const id = randomUUID();
  edit(state, householdId, (h) => { h.visits[id] = { at: new Date(), ...fields }; });
  return id;
}

function raiseRequest(state, householdId, grid, category, description) {
  const id = randomUUID();
  const raised = randomUUID();
  const at = new Date();
  create(state, id, "request", {
    schema: 1,
    type: "request",
    id,
    household: householdId,
    grid,
    category: category.code,
    description,
    urgency: "normal",
    raised_at: at,
    raised_by: state.member,
    // SCHEMA: "when it is due, from the category's due time" (due_hours after raising).
    due_at: new Date(at.getTime() + category.due_hours * 3600 * 1000),
    events: { [raised]: { kind: "raised", at, by: state.member, after: [] } },
  });
  return { id, raised };
}

// An event that has seen every event of the request so far.
function act(state, requestId, kind, note) {
  const eventId = randomUUID();
  edit(state, requestId, (r) => {
    r.events[eventId] = { kind, at: new Date(), by: state.member, note, after: Object.keys(r.events) };
  });
  return eventId;
}

// What a reader shows of a visit or a request (times in ms, texts as strings).
const showVisit = (id, v) => ({ id, at: millis(v.at), by: str(v.by), kind: str(v.kind),
  notes: str(v.notes) ?? "", needs: (v.needs ?? []).map(str) });
function showRequest(doc) {
  const events = Object.entries(doc.events).map(([id, e]) => ({ id, kind: str(e.kind), at: millis(e.at),
    by: str(e.by), note: str(e.note) ?? "", after: (e.after ?? []).map(str) }));
  return { id: str(doc.id), household: str(doc.household), grid: str(doc.grid), category: str(doc.category),
    description: str(doc.description), urgency: str(doc.urgency), raised_at: millis(doc.raised_at),
    raised_by: str(doc.raised_by), due_at: millis(doc.due_at), events };
}

// ---- the two commands ------------------------------------------------------------------------

async function write(state, args) {
  await enrol(state, args.server, args.code);
  // 1. First sync from cursor 0: the grid's household(s) and the county taxonomy.
  const first = await sync(state);
  check(state.taxonomy && state.taxonomy.version >= 1, "the taxonomy came with the first round");
  check(first.verified, "the scope digest matches after the first sync");
  const [[householdId, home]] = households(state);
  const category = state.taxonomy.categories.find((c) => c.code === "elderly_care" && !c.retired)
    ?? state.taxonomy.categories.find((c) => !c.retired);

  // 2. A visit, a new request, and two actions on it, each its own change.
  const visit = recordVisit(state, householdId, {
    by: state.member, kind: "care", notes: "JS 走访：老人身体尚好，冰箱空了", needs: ["送餐", "陪同就医"],
  });
  const grid = str(home.address.grid);
  const request = raiseRequest(state, householdId, grid, category, "JS 诉求：希望每周送两次餐");
  const accepted = act(state, request.id, "accepted", "已受理");
  const progress = act(state, request.id, "progress", "已联系社区食堂");
  const upload = await sync(state);
  check(upload.held_back.length === 0, `nothing refused: ${JSON.stringify(upload.held_back)}`);
  check(upload.acknowledged === 4 && pendingCount(state) === 0, `4 changes acknowledged (got ${upload.acknowledged})`);
  check(upload.verified, "the scope digest matches after the upload");

  const written = {
    member: state.member, device: state.device, actor: state.actor, role: state.role,
    taxonomy_version: state.taxonomy.version, category: category.code, due_hours: category.due_hours,
    household: householdId,
    visit: showVisit(visit, state.docs.get(householdId).doc.visits[visit]),
    request: showRequest(state.docs.get(request.id).doc), accepted, progress,
  };

  // 3. What the server must refuse. Each refusal holds its document back (§5.2.4); the change
  //    stays pending here, never taken as acknowledged.
  //    a. A visit credited to another member (the household's registrar): forged_actor.
  const other = str(home.created_by);
  check(other !== state.member, "the household was registered by another member");
  const forged = recordVisit(state, householdId, { by: other, kind: "routine", notes: "冒名的走访" });
  //    b. An event's note rewritten in place (a Text edit): the log's records never change,
  //       invalid_document.
  edit(state, request.id, (r) => A.updateText(r, ["events", accepted, "note"], "改过的备注"));
  //    c. A request for a household outside this member's scope: out_of_scope.
  const foreign = args["foreign-household"]
    ? raiseRequest(state, args["foreign-household"], grid, category, "别的网格的诉求").id : null;
  const refused = await sync(state);
  check(refused.acknowledged === 0, "nothing refused is acknowledged");
  check(pendingCount(state) === (foreign ? 3 : 2), "the refused changes stay pending");

  return { ...written, refused: { forged_visit: forged, forged_by: other, foreign_request: foreign,
    held_back: refused.held_back, pending: pendingCount(state) } };
}

async function read(state) {
  const report = await sync(state);
  return {
    sync: report,
    pending: pendingCount(state),
    households: Object.fromEntries(households(state).map(([id, doc]) =>
      [id, Object.entries(doc.visits).map(([vid, v]) => showVisit(vid, v))])),
  };
}

const [file, command, ...rest] = process.argv.slice(2);
const args = {};
for (let i = 0; i < rest.length; i += 2) args[rest[i].replace(/^--/, "")] = rest[i + 1];
const state = loadState(file);
const commands = { write, read };
if (!commands[command]) {
  console.error("usage: node client.mjs STATE write --server URL --code CODE | node client.mjs STATE read");
  process.exit(2);
}
try {
  const out = await commands[command](state, args);
  saveState(file, state);
  console.log(JSON.stringify(out));
} catch (e) {
  saveState(file, state);
  console.error(e.stack ?? String(e));
  process.exit(1);
}
