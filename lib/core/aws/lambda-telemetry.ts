import { LogFormatter, LogItem, Logger } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { jsonLine, type LogFields, type LogLevel } from '../log';
import { onLambda } from './runtime';

export { onLambda };

/**
 * Logging of the Lambda functions through Powertools for AWS Lambda (Logger). On Lambda it writes
 * each record straight to stdout/stderr (no runtime prefix, so Logs Insights reads the fields),
 * honours POWERTOOLS_LOG_LEVEL / the function's log level, and adds the request id and cold start
 * of the invocation. Elsewhere (the local runtime, tests) the same record goes through console,
 * where the local runner and the tests read it. Either way a record has the one shape of log.ts.
 */

/** The fields of the Lambda context Powertools reads (the `aws-lambda` Context type, without the dependency). */
export interface LambdaInvocationContext {
  readonly awsRequestId: string;
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
}

/** Powertools' attributes in log.ts's shape: level and msg first, then the fields, then time and the invocation. */
class TidemarkLogFormatter extends LogFormatter {
  formatAttributes(attributes: UnformattedAttributes, fields: LogAttributes): LogItem {
    const item = new LogItem({ attributes: { level: attributes.logLevel.toLowerCase(), msg: attributes.message } });
    item.addAttributes(fields);
    const context = attributes.lambdaContext;
    item.addAttributes({
      time: attributes.timestamp.toISOString(),
      ...(context ? { requestId: context.awsRequestId, coldStart: context.coldStart } : {}),
      ...(attributes.xRayTraceId ? { traceId: attributes.xRayTraceId } : {}),
    });
    return item;
  }
}

let logger: Logger | undefined;

/** The one Powertools Logger of this process (created on first use: CLI commands never load it). */
export function lambdaLogger(): Logger {
  logger ??= new Logger({ serviceName: 'tidemark', logFormatter: new TidemarkLogFormatter() });
  return logger;
}

/** Handlers call this first: every record of the invocation then carries its request id. */
export function useLambdaContext(context: LambdaInvocationContext | undefined): void {
  if (context && onLambda()) lambdaLogger().addContext(context as Parameters<Logger['addContext']>[0]);
}

/** One log record: Powertools on Lambda, console (as jsonLine) elsewhere. */
export function lambdaLog(level: LogLevel, msg: string, fields: LogFields = {}): void {
  if (onLambda()) lambdaLogger()[level](msg, { ...fields });
  else console[level](jsonLine(level, msg, fields).trimEnd());
}
