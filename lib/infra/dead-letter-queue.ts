import { Duration, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/**
 * A dead-letter queue (construct id `DeadLetterQueue`): SQS-managed keys, so whoever delivers
 * here needs no KMS grant; TLS only; kept 14 days. `of` says whose dead letters it holds, for the
 * cdk-nag acknowledgement that a dead-letter queue needs none of its own.
 */
export function deadLetterQueue(scope: Construct, of: string): sqs.Queue {
  const queue = new sqs.Queue(scope, 'DeadLetterQueue', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason: `This queue is itself the dead-letter queue of ${of}; it needs none of its own.` });
  return queue;
}
