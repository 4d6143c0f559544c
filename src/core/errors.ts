// Error classes that carry a user-facing message. main.ts maps them to exit
// statuses: CliError/ConfigError → 2 (usage), StartupError → 1 (runtime).

/**
 * A bad config value (a rule, a capture option, ...); the message starts
 * with the path to it ("rules[3].dstCidr[1]"), `value` is the bad value.
 */
export class ConfigError extends Error {
  readonly path: string
  readonly detail: string
  readonly value: unknown
  constructor(path: string, detail: string, value?: unknown) {
    super(path === '' ? detail : `${path}: ${detail}`)
    this.name = 'ConfigError'
    this.path = path
    this.detail = detail
    this.value = value
  }
}

/** A bad command line; the message names the bad flag or value. */
export class CliError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CliError'
  }
}

/** A HOST:PORT string that does not parse; config and CLI add their context. */
export class AddressError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AddressError'
  }
}

/** The gateway cannot start (e.g. a port is taken); no stack trace is useful. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StartupError'
  }
}

const MAX_SHOWN = 80

/**
 * Render a bad value for an error message the way it looks in JSON, so
 * strings are quoted and escaped, and long values are cut short.
 */
export function show(value: unknown): string {
  let text: string
  if (value === undefined) text = 'undefined'
  else if (typeof value === 'number' && !Number.isFinite(value)) text = String(value)
  else {
    try {
      text = JSON.stringify(value) ?? String(value)
    } catch {
      text = String(value)
    }
  }
  return text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN - 3) + '...' : text
}
