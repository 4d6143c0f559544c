// The package.json version, substituted by esbuild's --define at build time.
declare const __UGATE_VERSION__: string

/** 'dev' when run unbundled (unit tests on Node), where nothing defines it. */
export const VERSION: string = typeof __UGATE_VERSION__ === 'string' ? __UGATE_VERSION__ : 'dev'
