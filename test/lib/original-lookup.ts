// The original (Go) ugate's route lookup written as ordered rules: the
// rule engine must reproduce its decisions (test/unit/rules-json.test.ts).

import { ConfigError, show } from '../../src/core/errors.js'
import { parseIpInto } from '../../src/core/ip.js'
import { checkForwardHost, forwardTarget } from '../../src/core/rules/compile.js'
import type { RuleAction, RuleSpec } from '../../src/core/rules/index.js'

const ipScratch = new Int32Array(4)

/**
 * The original (Go) ugate looked a stream up in `routes` as "host:port",
 * then "host", then ":port", then "*"; a route's `forwardTo` ("HOST:PORT")
 * replaced the destination, a route without it kept the original one
 * (direct). This returns the same decisions as ordered rules: all
 * "host:port" keys first, then "host", ":port" and "*". A host that is an IP
 * literal becomes a dstCidr condition (the original compared the address
 * text; ugate routes addresses by value). Throws ConfigError naming the key.
 */
export function originalLookupRules(routes: Record<string, { forwardTo?: string }>, path = 'routes'): RuleSpec[] {
  if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
    throw new ConfigError(path, `must be an object of routes, not ${show(routes)}`, routes)
  }
  const groups: RuleSpec[][] = [[], [], [], []]
  for (const [key, route] of Object.entries(routes)) {
    const where = `${path}[${show(key)}]`
    const bad = (detail: string): never => {
      throw new ConfigError(where, detail, key)
    }
    if (route === null || typeof route !== 'object') bad(`must be an object with "forwardTo", not ${show(route)}`)
    for (const k of Object.keys(route)) if (k !== 'forwardTo') bad(`unknown field ${show(k)}`)
    let action: RuleAction = { type: 'direct' }
    if (route.forwardTo !== undefined) {
      const hp = typeof route.forwardTo === 'string' ? forwardTarget(route.forwardTo) : 'not a string'
      if (typeof hp === 'string') {
        throw new ConfigError(
          `${where}.forwardTo`,
          `${show(route.forwardTo)} is not HOST:PORT (${hp})`,
          route.forwardTo,
        )
      }
      action = { type: 'forward', host: checkForwardHost(hp[0])!, port: hp[1] }
    }
    const name = `route:${key}`.replace(/[^\x21-\x7e]/g, '_').slice(0, 64)
    if (key === '*') {
      groups[3]!.push({ name, action })
      continue
    }
    if (key.startsWith(':')) {
      const text = key.slice(1)
      if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) bad('is not ":PORT" (port 1-65535)')
      groups[2]!.push({ name, dstPort: [Number(text)], action })
      continue
    }
    // "host:port", "[v6]:port", "host", or a bare IPv6 address
    let host = key
    let port: number | null = null
    if (parseIpInto(key, ipScratch) === 0 && (key.startsWith('[') || key.includes(':'))) {
      const hp = forwardTarget(key)
      if (typeof hp === 'string') return bad(`is not "host:port", "host", ":port" or "*" (${hp})`)
      host = hp[0]
      port = hp[1]
    } else if (checkForwardHost(key) === null) {
      bad('is not "host:port", "host", ":port" or "*" (bad host name)')
    }
    const condition: Partial<RuleSpec> =
      parseIpInto(host, ipScratch) !== 0 ? { dstCidr: [host] } : { domain: [host.toLowerCase()] }
    if (port === null) groups[1]!.push({ name, ...condition, action })
    else groups[0]!.push({ name, ...condition, dstPort: [port], action })
  }
  return groups.flat()
}
