// The mesh identity in use: mutual TLS configs (native/tls.c) loaded from the
// config's `mesh` files, one for accepting (server) and one for dialing
// (client). Loaded at start (a bad file stops the start), loaded again on
// reload (a bad file keeps the identity in use). HBONE code takes the current
// handles with currentTls() for each new connection; connections already up
// keep the config they started with (tls.c counts references).

import * as native from 'ugate:native'
import type { MeshConfig } from '../core/config.js'
import { StartupError } from '../core/errors.js'
import { spiffeTrustDomain } from '../core/identity.js'
import { type NodeNameForms, parseNodeName } from '../core/node-name.js'
import type { Logger } from '../core/log.js'
import { describeError } from './sockets.js'

export interface MeshTls {
  /** For accepted connections (hbone listener): requires a client certificate. */
  server: native.TlsConfig
  /** For dialed connections (hbone upstream): sends our certificate, no SNI. */
  client: native.TlsConfig
  spiffeId: string
  nodeId: string
}

let current: MeshTls | null = null

/** The identity in use; null when the config has no mesh section. */
export function currentTls(): MeshTls | null {
  return current
}

/**
 * The node names this gate recognises (src/core/node-name.ts): full names in
 * the mesh's trust domain (else the one of its own id), short names with
 * mesh.nodeSuffix.
 */
export function nodeNameForms(m: MeshConfig | null): NodeNameForms {
  const own = current === null ? '' : spiffeTrustDomain(current.spiffeId)
  return { trustDomain: m?.trustDomain || own, suffix: m?.nodeSuffix ?? '' }
}

/** Whether host names this gate's own node. */
export function namesThisNode(host: string, m: MeshConfig | null): boolean {
  if (current === null) return false
  return parseNodeName(host, nodeNameForms(m))?.node === current.nodeId
}

function load(m: MeshConfig): MeshTls {
  const files = { chain: m.certChain, key: m.key, roots: m.rootCert, trustDomain: m.trustDomain }
  const server = native.tlsConfig({ server: true, ...files })
  const client = native.tlsConfig({ server: false, ...files })
  const info = native.tlsConfigInfo(server)
  return { server, client, spiffeId: info.spiffeId, nodeId: info.nodeId }
}

/** At start: load the identity or throw a StartupError naming the file (and the date). */
export function startMeshIdentity(m: MeshConfig | null): MeshTls | null {
  try {
    current = m === null ? null : load(m)
  } catch (e) {
    throw new StartupError(`mesh identity: ${describeError(e)}`)
  }
  return current
}

/**
 * On reload: the new files replace the identity for new connections; when
 * they cannot be used, the old identity stays and the error is logged. A
 * config without a mesh section drops it. Returns whether it changed.
 */
export function reloadMeshIdentity(m: MeshConfig | null, log: Logger): boolean {
  if (m === null) {
    const had = current !== null
    current = null
    return had
  }
  try {
    current = load(m)
    return true
  } catch (e) {
    log.error('mesh-reload-failed', { error: describeError(e), kept: current ? current.spiffeId : 'none' })
    return false
  }
}
