#!/usr/bin/env node
// Conformance driver: drives a running scaffolder + catalog backend with Backstage's real npm
// clients (@backstage/plugin-scaffolder-common ScaffolderClient, @backstage/catalog-client
// CatalogClient), exactly as the Backstage frontend would, and prints ONE JSON document on stdout.
//
// Usage:  node driver.js <scenario> [<params-json>]      (params may also come on stdin)
// Env:    SCAFFOLDER_CONFORMANCE_BASE   backend base URL (default http://127.0.0.1:7007);
//                                       the clients use <base>/api/scaffolder and <base>/api/catalog
//         SCAFFOLDER_CONFORMANCE_TOKEN  optional; sent as `Authorization: Bearer <token>` on every
//                                       request (plays the frontend FetchApi's role)
//         SCAFFOLDER_CONFORMANCE_TIMEOUT_MS  hard deadline for the whole scenario (default 60000)
//
// Output: {"ok": true,  "result": ..., "requests": [...]}
//         {"ok": false, "error": {...serialized error...}, "requests": [...]}
//         {"ok": false, "timeout": true, "partial": ..., "requests": [...]}  (exit code 2)
// `requests` lists every HTTP request the clients made: {method, url, status, contentType, ms}.
// Only loopback hosts are ever contacted; any other URL is refused before it is fetched.
'use strict';

// fetch-event-source touches window/document when the stream is aborted after `completion`
// (CONTRACT §4.5); without these stubs Node dies with `ReferenceError: document is not defined`.
globalThis.window ??= globalThis;
globalThis.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };

const fs = require('node:fs');
const { ScaffolderClient } = require('@backstage/plugin-scaffolder-common');
const { CatalogClient } = require('@backstage/catalog-client');
const { ScmIntegrations } = require('@backstage/integration');
const { ConfigReader } = require('@backstage/config');

const BASE = (process.env.SCAFFOLDER_CONFORMANCE_BASE || 'http://127.0.0.1:7007').replace(/\/+$/, '');
const TOKEN = process.env.SCAFFOLDER_CONFORMANCE_TOKEN || '';
const TIMEOUT_MS = Number(process.env.SCAFFOLDER_CONFORMANCE_TIMEOUT_MS || 60000);
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

const requests = [];
let partial; // what a scenario has collected so far; printed if the deadline hits

function emit(doc, code) {
  process.stdout.write(`${JSON.stringify({ ...doc, requests })}\n`, () => process.exit(code));
}

function assertLoopback(url) {
  const host = new URL(url).hostname;
  if (!LOOPBACK.has(host)) {
    throw new Error(`conformance driver refuses non-loopback URL ${url}`);
  }
}

// The frontend's FetchApi: adds the bearer token (if any) and records every request.
const fetchApi = {
  fetch: async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input.url;
    assertLoopback(url);
    const headers = new Headers(init.headers);
    if (TOKEN) headers.set('Authorization', `Bearer ${TOKEN}`);
    const entry = { method: (init.method || 'GET').toUpperCase(), url };
    requests.push(entry);
    const started = Date.now();
    try {
      const res = await fetch(input, { ...init, headers });
      entry.status = res.status;
      entry.contentType = res.headers.get('content-type');
      return res;
    } catch (e) {
      entry.networkError = String(e && e.message);
      throw e;
    } finally {
      entry.ms = Date.now() - started;
    }
  },
};

const discoveryApi = { getBaseUrl: async pluginId => `${BASE}/api/${pluginId}` };

function scaffolderClient({ polling = false } = {}) {
  return new ScaffolderClient({
    discoveryApi,
    fetchApi,
    identityApi: {
      getBackstageIdentity: async () => ({
        type: 'user',
        userEntityRef: 'user:default/guest',
        ownershipEntityRefs: ['user:default/guest'],
      }),
    },
    scmIntegrationsApi: ScmIntegrations.fromConfig(new ConfigReader({})),
    useLongPollingLogs: polling,
  });
}

const catalogClient = () => new CatalogClient({ discoveryApi, fetchApi });

function serializeError(e) {
  if (!e || typeof e !== 'object') return { name: 'NonError', message: String(e) };
  const out = { name: e.name, message: e.message };
  if (e.constructor && e.constructor.name) out.constructorName = e.constructor.name;
  if ('statusCode' in e) out.statusCode = e.statusCode;
  if ('statusText' in e) out.statusText = e.statusText;
  if ('body' in e) out.body = e.body;
  if (e.cause && typeof e.cause === 'object') {
    out.cause = { name: e.cause.name, message: e.cause.message };
  }
  return out;
}

/**
 * Subscribe to client.streamLogs and collect events until the Observable completes or errors.
 * `onEvent(event, events)` may return a promise (awaited in order, errors recorded).
 * Resolves {events, completed, error, elapsedMs}; never rejects.
 */
function collectStream(client, request, { onEvent } = {}) {
  const started = Date.now();
  const events = [];
  const sideErrors = [];
  let chain = Promise.resolve();
  const state = { events, completed: false, error: null, sideErrors };
  partial = state;
  return new Promise(resolve => {
    const finish = () =>
      chain.then(() => {
        state.elapsedMs = Date.now() - started;
        resolve(state);
      });
    client.streamLogs(request).subscribe({
      next: event => {
        events.push(event);
        if (onEvent) {
          chain = chain
            .then(() => onEvent(event, events))
            .catch(err => sideErrors.push(serializeError(err)));
        }
      },
      error: err => {
        state.error = serializeError(err);
        finish();
      },
      complete: () => {
        state.completed = true;
        finish();
      },
    });
  });
}

const scenarios = {
  // --- ScaffolderClient -------------------------------------------------------------------------
  'parameter-schema': async ({ templateRef }) =>
    scaffolderClient().getTemplateParameterSchema(templateRef),

  actions: async () => scaffolderClient().listActions(),

  'templating-extensions': async () => scaffolderClient().listTemplatingExtensions(),

  scaffold: async ({ templateRef, values, secrets }) =>
    scaffolderClient().scaffold({ templateRef, values, ...(secrets ? { secrets } : {}) }),

  // {taskId, polling?, after?} -> {events, completed, error, elapsedMs}
  stream: async ({ taskId, polling = false, after }) =>
    collectStream(scaffolderClient({ polling }), { taskId, ...(after !== undefined ? { after } : {}) }),

  'get-task': async ({ taskId }) => scaffolderClient().getTask(taskId),

  'list-tasks': async ({ filterByOwnership = 'all', limit, offset }) =>
    scaffolderClient().listTasks({ filterByOwnership, limit, offset }),

  cancel: async ({ taskId }) => scaffolderClient().cancelTask(taskId),

  retry: async ({ taskId }) => scaffolderClient().retry(taskId),

  'dry-run': async ({ template, values, secrets, directoryContents }) =>
    scaffolderClient().dryRun({ template, values, secrets, directoryContents }),

  // Scaffold, stream over SSE and cancel as soon as step `cancelAtStepId` reports `processing`,
  // keep streaming to the end, then read the task. Everything the frontend's "Cancel" button does.
  // With `retryWhileRunning`, first calls retry() on the running task (upstream: 409 ConflictError).
  'cancel-flow': async ({ templateRef, values, cancelAtStepId, polling = false, retryWhileRunning = false }) => {
    const client = scaffolderClient({ polling });
    const { taskId } = await client.scaffold({ templateRef, values });
    const out = { taskId };
    partial = out;
    let cancelSent = false;
    const stream = await collectStream(client, { taskId }, {
      onEvent: async event => {
        if (
          !cancelSent &&
          event.body &&
          event.body.stepId === cancelAtStepId &&
          event.body.status === 'processing'
        ) {
          cancelSent = true;
          if (retryWhileRunning) {
            try {
              out.retryWhileRunningResult = await client.retry(taskId);
            } catch (e) {
              out.retryWhileRunningError = serializeError(e);
            }
          }
          out.cancelAfterEventId = event.id;
          out.cancelStartedMs = Date.now();
          try {
            out.cancelResult = await client.cancelTask(taskId);
          } catch (e) {
            out.cancelError = serializeError(e);
          }
        }
      },
    });
    Object.assign(out, { stream, cancelSent });
    partial = out;
    if (out.cancelStartedMs) out.cancelToEndMs = Date.now() - out.cancelStartedMs;
    out.task = await client.getTask(taskId);
    return out;
  },

  // Scaffold, stream to completion, read the task.
  run: async ({ templateRef, values, polling = false }) => {
    const client = scaffolderClient({ polling });
    const { taskId } = await client.scaffold({ templateRef, values });
    const out = { taskId };
    partial = out;
    out.stream = await collectStream(client, { taskId });
    partial = out;
    out.task = await client.getTask(taskId);
    return out;
  },

  // Scaffold, stream to completion, retry, stream again to completion, read the task.
  'retry-flow': async ({ templateRef, values }) => {
    const client = scaffolderClient();
    const { taskId } = await client.scaffold({ templateRef, values });
    const out = { taskId };
    partial = out;
    out.firstStream = await collectStream(client, { taskId });
    partial = out;
    out.taskBeforeRetry = await client.getTask(taskId);
    try {
      out.retryResult = await client.retry(taskId);
    } catch (e) {
      out.retryError = serializeError(e);
      return out;
    }
    out.secondStream = await collectStream(client, { taskId });
    partial = out;
    out.taskAfterRetry = await client.getTask(taskId);
    return out;
  },

  // --- CatalogClient ----------------------------------------------------------------------------
  'catalog-get-entity': async ({ entityRef }) => {
    const entity = await catalogClient().getEntityByRef(entityRef);
    return { found: entity !== undefined, entity: entity ?? null };
  },

  'catalog-get-entities': async ({ filter, fields }) =>
    catalogClient().getEntities({ filter, ...(fields ? { fields } : {}) }),

  // {entityRefs, fields?, filter?, query?} -> {items: [entity | null]}
  'catalog-entities-by-refs': async ({ entityRefs, fields, filter, query }) => {
    const { items } = await catalogClient().getEntitiesByRefs({ entityRefs, fields, filter, query });
    return { items: items.map(i => i ?? null) };
  },

  // Follows nextCursor to the end, then walks back with prevCursor from the last page.
  // {request: <initial queryEntities request>} -> {pages: [{names, totalItems, pageInfo keys}], back: [...]}
  'catalog-query-walk': async ({ request, maxPages = 20 }) => {
    const client = catalogClient();
    const pageOf = res => ({
      names: res.items.map(e => e.metadata.name),
      totalItems: res.totalItems,
      pageInfo: Object.keys(res.pageInfo).sort(),
    });
    const out = { pages: [], back: [] };
    partial = out;
    let res = await client.queryEntities(request);
    out.pages.push(pageOf(res));
    while (res.pageInfo.nextCursor && out.pages.length < maxPages) {
      res = await client.queryEntities({ cursor: res.pageInfo.nextCursor, limit: request.limit, fields: request.fields });
      out.pages.push(pageOf(res));
    }
    while (res.pageInfo.prevCursor && out.back.length < maxPages) {
      res = await client.queryEntities({ cursor: res.pageInfo.prevCursor, limit: request.limit, fields: request.fields });
      out.back.push(pageOf(res));
    }
    return out;
  },

  'catalog-facets': async ({ facets, filter, query }) =>
    catalogClient().getEntityFacets({ facets, ...(filter ? { filter } : {}), ...(query ? { query } : {}) }),

  'catalog-ancestors': async ({ entityRef }) => catalogClient().getEntityAncestors({ entityRef }),

  'catalog-validate': async ({ entity, locationRef }) =>
    catalogClient().validateEntity(entity, locationRef),

  'catalog-add-location': async ({ type = 'url', target, dryRun = false }) =>
    catalogClient().addLocation({ type, target, dryRun }),

  // Register, read back (by ref, by id, list), then unregister: what catalog:register does.
  'catalog-location-cycle': async ({ target }) => {
    const client = catalogClient();
    const out = {};
    partial = out;
    out.added = await client.addLocation({ type: 'url', target });
    out.byRef = (await client.getLocationByRef(`url:${target}`)) ?? null;
    out.byId = (await client.getLocationById(out.added.location.id)) ?? null;
    out.list = (await client.getLocations()).items;
    try {
      await client.addLocation({ type: 'url', target });
    } catch (e) {
      out.duplicateError = serializeError(e);
    }
    await client.removeLocationById(out.added.location.id);
    out.afterRemove = (await client.getLocationById(out.added.location.id)) ?? null;
    return out;
  },

  // Register, wait for the entity, then the per-entity routes: location by entity, refresh,
  // delete by uid (it comes back: its location still emits it), and unregister.
  'catalog-entity-lifecycle': async ({ target, entityRef, waitMs = 20000 }) => {
    const client = catalogClient();
    const out = {};
    partial = out;
    try {
      out.added = await client.addLocation({ type: 'url', target });
    } catch (e) {
      // A shared server (the upstream reference) may have it registered already: keep it.
      if (e.statusCode !== 409) throw e;
      out.added = { location: await client.getLocationByRef(`url:${target}`), preexisting: true };
    }
    const deadline = Date.now() + waitMs;
    let entity;
    while (!(entity = await client.getEntityByRef(entityRef)) && Date.now() < deadline) {
      await new Promise(r => setTimeout(r, 100));
    }
    out.found = entity !== undefined;
    if (entity) {
      out.locationByEntity = (await client.getLocationByEntity(entityRef)) ?? null;
      await client.refreshEntity(entityRef);
      out.refreshed = true;
      await client.removeEntityByUid(entity.metadata.uid);
      out.removed = true;
    }
    if (!out.added.preexisting) await client.removeLocationById(out.added.location.id);
    return out;
  },
};

function readParams() {
  if (process.argv[3]) return JSON.parse(process.argv[3]);
  if (process.stdin.isTTY) return {};
  const text = fs.readFileSync(0, 'utf8').trim();
  return text ? JSON.parse(text) : {};
}

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    emit({ ok: false, error: { name: 'UsageError', message: `unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}` } }, 64);
    return;
  }
  assertLoopback(BASE);
  const timer = setTimeout(
    () => emit({ ok: false, timeout: true, timeoutMs: TIMEOUT_MS, partial: partial ?? null }, 2),
    TIMEOUT_MS,
  );
  let doc;
  try {
    doc = { ok: true, result: (await scenario(readParams())) ?? null };
  } catch (e) {
    doc = { ok: false, error: serializeError(e) };
  }
  clearTimeout(timer);
  emit(doc, 0);
}

main();
