// Node names, runtime-free (docs/mesh.md, "Routing by node name"): a host
// that names a mesh node rather than a DNS name. Two forms:
//
//   <NODEID>.<namespace>.<trust-domain>   the node's full name (the original ugate's mangled name)
//   <NODEID>.<suffix>                     the short form, when mesh.nodeSuffix is set
//
// NODEID is the node id (src/core/identity.ts: base32 of SHA-256 of the
// node's public key), in either case; the namespace is the one of the node's
// SPIFFE id. Host names are case-blind, so names are compared in lower case.

import { show } from './errors.js'
import { parseNodeId, parseSpiffeId, segmentProblem } from './identity.js'

/** What makes a host a node name at this gate. */
export interface NodeNameForms {
  /** The full form's trust domain (the mesh's); '' = no full form. */
  trustDomain: string
  /** The short form's suffix (lower case, no leading dot); '' = no short form. */
  suffix: string
}

export interface NodeName {
  /** The node id, upper case. */
  node: string
  /** Full form: the namespace (lower case) and trust domain; short form: both ''. */
  namespace: string
  trustDomain: string
}

/** The node a host names, or null when it names none (a DNS name like any other). */
export function parseNodeName(host: string, forms: NodeNameForms): NodeName | null {
  if (host.length > 253) return null
  const h = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase()
  const dot = h.indexOf('.')
  if (dot !== 52) return null
  const id = parseNodeId(h.slice(0, dot))
  if ('error' in id) return null
  const rest = h.slice(dot + 1)
  if (forms.suffix !== '' && rest === forms.suffix) return { node: id.id, namespace: '', trustDomain: '' }
  const td = forms.trustDomain
  if (td === '' || rest.length <= td.length + 1 || !rest.endsWith(`.${td}`)) return null
  const namespace = rest.slice(0, rest.length - td.length - 1)
  if (segmentProblem(namespace) !== null) return null
  return { node: id.id, namespace, trustDomain: td }
}

/** A node's full name, as this gate sends it in a CONNECT's authority (lower case). */
export function formatNodeName(node: string, namespace: string, trustDomain: string): string {
  return `${node}.${namespace}.${trustDomain}`.toLowerCase()
}

/**
 * Why the node a full name names is not the node of SPIFFE id `id` (its
 * namespace or trust domain differ), or null. A short name, or a node whose
 * id is not known, names it by its node id alone.
 */
export function nodeNameMismatch(name: NodeName, id: string): string | null {
  if (name.namespace === '' || id === '') return null
  const p = parseSpiffeId(id)
  if ('error' in p) return `node ${name.node} has no SPIFFE id to check the name against`
  if (p.id.namespace.toLowerCase() !== name.namespace || p.id.trustDomain !== name.trustDomain)
    return `node ${name.node} is ${id}, not in namespace ${name.namespace} of ${name.trustDomain}`
  return null
}

/**
 * Why `host` is not a name of node `node` whose SPIFFE id is `id`, or null
 * when it is: its full name (the namespace and trust domain of `id`) or, when
 * `suffix` is set, its short name. A relay pairing by name checks the whole
 * name against what the node proved, not only the node id in front.
 */
export function nodeNameProblem(host: string, node: string, id: string, suffix: string): string | null {
  const p = parseSpiffeId(id)
  if ('error' in p) return `node ${node} has no SPIFFE id to check the name against`
  const name = parseNodeName(host, { trustDomain: p.id.trustDomain, suffix })
  if (name !== null && name.node === node && nodeNameMismatch(name, id) === null) return null
  const forms = [formatNodeName(node, p.id.namespace, p.id.trustDomain)]
  if (suffix !== '') forms.push(`${node.toLowerCase()}.${suffix}`)
  return `${show(host)} is not a name of node ${node} (${id}): ${forms.join(' or ')}`
}
