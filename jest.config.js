// The AWS SDK warns once per process that it will need Node 22 from 2027; tests run on Node 20 on
// purpose (the machine's version), and the warning would bury the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  // d3's packages are ES modules, which jest's CommonJS runtime cannot load on Node 20/22; each
  // also ships a UMD build that requires its d3 dependencies by name.
  moduleNameMapper: { '^(d3-[a-z-]+|internmap)$': '<rootDir>/node_modules/$1/dist/$1.js' },
  // Integration suites start real database clusters; two workers match the two cores here.
  maxWorkers: 2,
  // The secrets scan of issue 11 (test/harness/secret-scan.ts): a sampler of the process table for
  // the whole run, hooks on what tests produce, and a teardown that fails the run on any finding.
  globalSetup: '<rootDir>/test/harness/secret-scan-setup.ts',
  globalTeardown: '<rootDir>/test/harness/secret-scan-teardown.ts',
  setupFilesAfterEnv: ['<rootDir>/test/harness/secret-scan-hooks.ts'],
  testTimeout: 180_000,
  verbose: false,
};
