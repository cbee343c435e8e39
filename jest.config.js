/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  // Integration suites start real database clusters; two workers match the two cores here.
  maxWorkers: 2,
  testTimeout: 180_000,
  verbose: false,
};
