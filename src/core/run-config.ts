// The config `ugate run` runs with: the file (or the embedded default) with
// the command-line flags laid over it, then the one validator. Merging in
// the JSON shape keeps a single place that checks values and conflicts.

import type { RunOptions } from './cli.js'
import { type Config, validateConfig } from './config.js'
import { defaultConfigJson } from './defaults.js'

type Obj = Record<string, unknown>

/** `fileJson` is the parsed config file, or undefined without --config. */
export function runConfig(fileJson: unknown, opts: RunOptions): Config {
  const base = fileJson !== undefined ? fileJson : opts.forwards.length > 0 ? {} : defaultConfigJson()
  // A malformed root is left alone so the validator reports it.
  if (!isObj(base)) return validateConfig(base)
  const root: Obj = { ...base }
  override(root, 'log', { level: opts.logLevel, syslog: opts.logSyslog })
  override(root, 'relay', {
    splice: opts.splice,
    idleTimeout: opts.idleTimeout,
    shutdownGrace: opts.grace,
  })
  if (opts.forwards.length > 0) {
    const listeners = root.listeners === undefined ? [] : root.listeners
    if (Array.isArray(listeners)) {
      const forwards = opts.forwards.map((f, i) => ({
        name: `fwd${i + 1}`,
        type: 'forward',
        listen: f.listen,
        target: f.target,
      }))
      root.listeners = [...listeners, ...forwards]
    }
  }
  return validateConfig(root)
}

/** Set the defined values into root[key] (a copy), unless root[key] is not an object. */
function override(root: Obj, key: string, values: Obj): void {
  const defined = Object.entries(values).filter(([, v]) => v !== undefined)
  if (defined.length === 0) return
  const section = root[key] === undefined ? {} : root[key]
  if (!isObj(section)) return
  root[key] = { ...section, ...Object.fromEntries(defined) }
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
