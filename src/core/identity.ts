// Node identities, runtime-free: SPIFFE ids, the files, the
// dates a new certificate gets and the validity check with its message.
// The crypto and the node id are native/identity.c (through src/io/identity.ts).

/** The files of an identity directory: Istio's names (plus the CA's key). */
export const IDENTITY_FILES = {
  rootCert: 'root-cert.pem',
  certChain: 'cert-chain.pem',
  key: 'key.pem',
  /** Only `identity init` writes it: what signs more nodes of a standalone mesh. */
  caKey: 'ca-key.pem',
} as const

export const IDENTITY_DEFAULTS = {
  dir: '/etc/ugate/identity',
  trustDomain: 'cluster.local',
  namespace: 'default',
  serviceAccount: 'ugate',
  days: 365,
} as const
/** Days a certificate may be valid for at most (`--days`). */
export const MAX_DAYS = 36500
/** The CA outlives the node certificates it signs: at least this long. */
const CA_MIN_DAYS = 3650
/** Routers' clocks disagree a little: a new certificate is valid from a bit before now. */
const BACKDATE_MS = 5 * 60 * 1000
const DAY_MS = 86400 * 1000

export interface SpiffeId {
  trustDomain: string
  namespace: string
  serviceAccount: string
}

// SPIFFE ID standard 2.1/2.2: a trust domain is lower-case letters, digits,
// '.', '-', '_'; path segments add upper case and are never '.' or '..'.
const TRUST_DOMAIN = /^[a-z0-9._-]+$/
const SEGMENT = /^[A-Za-z0-9._-]+$/
/** The longest SPIFFE id a peer must accept (SPIFFE ID standard 2.3). */
const MAX_SPIFFE_LEN = 2048

/** Why a trust domain is not one, or null. */
export function trustDomainProblem(td: string): string | null {
  if (td === '') return 'is empty'
  if (!TRUST_DOMAIN.test(td)) return 'may only hold a-z, 0-9, ".", "-" and "_"'
  if (td.length > 255) return 'is longer than 255 characters'
  return null
}

/** Why text is not a node id (52 characters of base32: A-Z, 2-7), or null. */
export function nodeIdProblem(text: string): string | null {
  return /^[A-Z2-7]{52}$/.test(text) ? null : 'is not a node id (52 characters A-Z, 2-7)'
}

/** Why a namespace or service account is not a SPIFFE path segment, or null. */
export function segmentProblem(seg: string): string | null {
  if (seg === '') return 'is empty'
  if (seg === '.' || seg === '..') return 'may not be "." or ".."'
  if (!SEGMENT.test(seg)) return 'may only hold A-Z, a-z, 0-9, ".", "-" and "_"'
  return null
}

/** Why v is not an Istio workload SPIFFE id ("is not a SPIFFE id: ..."), or null. */
export function spiffeIdProblem(v: unknown): string | null {
  const p = typeof v === 'string' ? parseSpiffeId(v) : { error: 'is not a string' }
  return 'error' in p ? `is not a SPIFFE id: ${p.error}` : null
}

/** The trust domain of a SPIFFE id ("spiffe://TD/..."), or '' when it has none. */
export function spiffeTrustDomain(id: string): string {
  if (!id.startsWith('spiffe://')) return ''
  const slash = id.indexOf('/', 9)
  return slash < 0 ? '' : id.slice(9, slash)
}

// A node id: base32 (RFC 4648, no padding) of a SHA-256, 52 characters; 256
// bits leave one bit in the last character, so it is A or Q.
const NODE_ID = /^[A-Z2-7]{51}[AQ]$/

/** A node id as ugate prints it (upper case), or the reason v is not one. */
export function parseNodeId(v: unknown): { id: string } | { error: string } {
  if (typeof v !== 'string') return { error: 'is not a string' }
  const id = v.toUpperCase()
  if (id.length !== 52) return { error: `is not a node id (52 base32 characters, not ${id.length})` }
  if (!NODE_ID.test(id)) return { error: 'is not a node id (base32: A-Z and 2-7, the last one A or Q)' }
  return { id }
}

/** `spiffe://TD/ns/NS/sa/SA`; the parts must already be valid. */
export function formatSpiffeId(id: SpiffeId): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`
}

/** An Istio workload identity from a URI SAN, or the reason it is not one. */
export function parseSpiffeId(uri: string): { id: SpiffeId } | { error: string } {
  if (uri.length > MAX_SPIFFE_LEN) return { error: `is longer than ${MAX_SPIFFE_LEN} characters` }
  if (!uri.startsWith('spiffe://')) return { error: 'does not start with "spiffe://"' }
  const [td = '', ...path] = uri.slice('spiffe://'.length).split('/')
  const tdProblem = trustDomainProblem(td)
  if (tdProblem !== null) return { error: `trust domain ${JSON.stringify(td)} ${tdProblem}` }
  if (path.length !== 4 || path[0] !== 'ns' || path[2] !== 'sa') {
    return { error: 'has no /ns/NAMESPACE/sa/SERVICE-ACCOUNT path' }
  }
  for (const seg of [path[1]!, path[3]!]) {
    const p = segmentProblem(seg)
    if (p !== null) return { error: `path segment ${JSON.stringify(seg)} ${p}` }
  }
  return { id: { trustDomain: td, namespace: path[1]!, serviceAccount: path[3]! } }
}

/** An X.509 time as mbedTLS writes it: "YYYYMMDDhhmmss", UTC. */
function x509Time(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)
}

/**
 * What `identity init` makes (native identityCreate's parameters: subjects
 * as DN strings, X.509 times), from validated parts, at time nowMs.
 */
export function identityPlan(id: SpiffeId, days: number, nowMs: number) {
  const from = nowMs - BACKDATE_MS
  return {
    caSubject: `O=${id.trustDomain},CN=ugate root CA`,
    caNotBefore: x509Time(from),
    caNotAfter: x509Time(nowMs + Math.max(days, CA_MIN_DAYS) * DAY_MS),
    nodeSubject: `O=${id.trustDomain},CN=${id.serviceAccount}.${id.namespace}`,
    nodeNotBefore: x509Time(from),
    nodeNotAfter: x509Time(nowMs + days * DAY_MS),
    uri: formatSpiffeId(id),
  }
}

/**
 * Why a certificate read from `file` cannot be used at nowMs (expired or not
 * yet valid, naming the file and the date), or null. Dates are ISO 8601 UTC.
 */
export function validityProblem(file: string, notBefore: string, notAfter: string, nowMs: number): string | null {
  const from = Date.parse(notBefore)
  const to = Date.parse(notAfter)
  if (Number.isNaN(from) || Number.isNaN(to)) return `${file}: unreadable validity dates ${notBefore} - ${notAfter}`
  const now = new Date(nowMs).toISOString().replace(/\.\d+Z$/, 'Z')
  if (nowMs < from) return `${file}: certificate is not valid before ${notBefore} (now ${now})`
  if (nowMs > to) return `${file}: certificate expired on ${notAfter} (now ${now})`
  return null
}
