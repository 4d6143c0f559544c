// The mesh identity's TLS configs, as hbone.ts needs them. PLACEHOLDER until
// the TLS work (native/tls.c, the `mesh` config section) is merged: no
// identity yet, so every hbone listener and upstream refuses to start.

export interface OwnIdentity {
  spiffeId: string
  namespace: string
  serviceAccount: string
}

/** The current TLS config handle for one role, or null when the mesh has no usable identity. */
export function meshTls(role: 'server' | 'client'): unknown {
  void role
  return null
}

/** Our own SPIFFE id's parts, or null when there is no identity. */
export function ownIdentity(): OwnIdentity | null {
  return null
}
