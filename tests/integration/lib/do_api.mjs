// Durable Objects REST helpers shared by the DO tests (docs/API.md "Durable Objects"): paths,
// namespace creation, ids, storage calls. `node` is anything with api()/accountId (a harness
// server or a cluster node).
import { hex32 } from './harness.mjs';

export const HEX64 = /^[0-9a-f]{64}$/;
export const HEX32 = /^[0-9a-f]{32}$/;

export const nsRoot = (node, account = node.accountId) => `/accounts/${account}/workers/durable_objects/namespaces`;
export const nsPath = (node, ns) => `${nsRoot(node)}/${ns}`;
export const objPath = (node, ns, obj) => `${nsRoot(node)}/${ns}/objects/${obj}`;

// Create a namespace; returns the parsed reply (throws on failure).
export async function createNs(node, body = {}) {
  const b = { name: `ns-${hex32()}`, class: 'Counter', ...body };
  const r = await node.api('POST', nsRoot(node), { json: b });
  if (r.status !== 200 || r.body?.success !== true) throw new Error(`create DO namespace ${JSON.stringify(b)}: ${r.status} ${r.text}`);
  return r.body.result;
}

// idFromName (name given) or newUniqueId (name undefined): the id string.
export async function newId(node, ns, name) {
  const r = await node.api('POST', `${nsPath(node, ns)}/objects/ids`, { json: name === undefined ? {} : { name } });
  if (r.status !== 200 || r.body?.success !== true) throw new Error(`objects/ids ${name}: ${r.status} ${r.text}`);
  return r.body.result.id;
}

export function storage(node, ns, obj, op, json, headers) {
  return node.api('POST', `${objPath(node, ns, obj)}/storage/${op}`, { json, headers });
}

export function list(node, ns, obj, query = {}, headers) {
  const q = new URLSearchParams(query).toString();
  return node.api('GET', `${objPath(node, ns, obj)}/storage/list${q ? `?${q}` : ''}`, { headers });
}

// A token of the server's account with these permissions: { id, value, ... }.
export async function createToken(node, permissions, name = `t-${hex32().slice(0, 8)}`) {
  const r = await node.api('POST', `/accounts/${node.accountId}/tokens`, { json: { name, permissions } });
  if (r.status !== 200 || r.body?.success !== true) throw new Error(`create token ${JSON.stringify(permissions)}: ${r.status} ${r.text}`);
  return r.body.result;
}

export const bearer = (token) => ({ auth: false, headers: { authorization: `Bearer ${token}` } });
