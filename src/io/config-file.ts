// The config `ugate run` and `ugate check` use: a JSON file, a uci file
// (/etc/config/ugate; told apart by a leading "{"), or the embedded default,
// with the command-line flags laid over it. Read again on SIGHUP.

import type { RunOptions } from '../core/cli.js'
import { type Config, parseConfigText } from '../core/config.js'
import { ConfigError } from '../core/errors.js'
import { runConfig } from '../core/run-config.js'
import { looksLikeJson, uciConfigJson } from '../core/uci-config.js'
import { readConfigText } from './process.js'

/** Throws ConfigError or UciError naming the file (and line, for uci). */
export function loadRunConfig(opts: RunOptions): Config {
  const file = opts.configFile
  if (file === undefined) return runConfig(undefined, opts)
  const text = readConfigText(file)
  if (looksLikeJson(text)) return runConfig(parseConfigText(text, file), opts)
  const u = uciConfigJson(text, file)
  try {
    return runConfig(u.json, opts)
  } catch (e) {
    if (e instanceof ConfigError) throw u.relocate(e)
    throw e
  }
}
