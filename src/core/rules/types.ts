// The rule engine's public types (index.ts re-exports them).

import type { SniffProto } from '../sniff/types.js'

export type RuleAction =
  | { type: 'direct' }
  | { type: 'reject' }
  | { type: 'upstream'; name: string }
  | { type: 'forward'; host: string; port: number }
  /** To the mesh node the host names (docs/mesh.md, routing by node name); never the default. */
  | { type: 'mesh' }

/** A port, an inclusive range, or text: "80", "8000-8080". */
export type PortSpec = number | [number, number] | string

export interface RuleSpec {
  name?: string
  /** Exact names; case and a trailing dot are ignored. */
  domain?: string[]
  /** "example.com" matches example.com and every name below it (label boundary). */
  domainSuffix?: string[]
  /** Substring of the host name. */
  domainKeyword?: string[]
  /** IPv4/IPv6 CIDRs or plain addresses. */
  dstCidr?: string[]
  dstPort?: PortSpec[]
  srcCidr?: string[]
  listener?: string[]
  proto?: SniffProto[]
  /** "tcp" or "udp"; a rule without it matches both. */
  network?: Array<'tcp' | 'udp'>
  /**
   * The mesh peer's SPIFFE id (spiffe://TD/ns/NS/sa/SA), the trust domain of
   * that id, its node id (52 base32 characters): only connections that came
   * through an hbone listener have them; others never match these.
   */
  srcIdentity?: string[]
  srcTrustDomain?: string[]
  srcNode?: string[]
  action: RuleAction
}

export interface RouteQuery {
  /** Host name when known (SNI, HTTP Host, SOCKS/CONNECT name). */
  host?: string
  /** Destination IP literal when known. */
  dstIp?: string
  dstPort: number
  srcIp: string
  listener: string
  proto?: SniffProto
  /** How the traffic arrived; absent = 'tcp'. */
  network?: 'tcp' | 'udp'
  /** The mesh peer's SPIFFE id and node id (an hbone listener's streams); absent otherwise. */
  srcIdentity?: string
  srcNode?: string
}

export interface RouteResult {
  action: RuleAction
  /** Index of the matching rule, -1 for the default action. */
  ruleIndex: number
  /** The rule's name, when it has one. */
  ruleName?: string
}
