import { Annotations, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { SourceDeployment } from '../core/config/deployment';

/** The ECS service that streams a source's WAL/binlog (Container Insights names it by these). */
export interface StreamerService {
  readonly serviceName: string;
  readonly clusterName: string;
}

export interface BackupObservabilityProps {
  /** Every source of this deployment: each gets RPO, failure and drill alarms. */
  readonly sources: readonly SourceDeployment[];
  /**
   * Streamer services by source name: each gets a "streamer down" alarm.
   * @default - no streamer alarms
   */
  readonly streamers?: ReadonlyMap<string, StreamerService>;
  /**
   * Where alarms are mailed (the subscription must be confirmed from the first mail).
   * @default - no subscription; subscribe to `topic` yourself
   */
  readonly alarmEmail?: string;
  /**
   * CloudWatch namespace the functions emit into (BackupFunctionsProps.namespace).
   * @default 'Tidemark'
   */
  readonly namespace?: string;
  /**
   * The backup state machine: failed executions alarm, and its executions are graphed.
   * @default - no state machine alarm or graph
   */
  readonly stateMachine?: sfn.IStateMachine;
}

/** The metric names of the contract (docs/aws-architecture.md), all with dimension `Source`. */
type SourceMetricName =
  | 'BackupSucceeded'
  | 'BackupFailed'
  | 'BackupStoredBytes'
  | 'SecondsSinceNewestRestorablePoint'
  | 'DrillSucceeded'
  | 'DrillFailed'
  | 'DrillRtoSeconds'
  | 'DrillRpoSeconds'
  | 'DrillPredictedRtoSeconds';

/**
 * Alarms on what a backup system promises — a recent restorable point per source — and on what
 * breaks it (failed runs, a streamer down, failed drills, failed executions), all sent to one
 * KMS-encrypted SNS topic, plus a dashboard.
 *
 * Alarm keys in `alarms`: `<source>/RpoBreached`, `<source>/BackupFailed`, `<source>/DrillFailed`,
 * `<source>/StreamerDown` (streamed sources), `<source>/RtoAtRisk` (sources with an `rto`),
 * `ExecutionsFailed` (with a state machine).
 */
export class BackupObservability extends Construct {
  /** Every alarm publishes here, on ALARM and on OK. */
  readonly topic: sns.Topic;
  /** Encrypts the topic; CloudWatch may use it (the AWS-managed SNS key cannot be granted to it). */
  readonly topicKey: kms.Key;
  readonly alarms: ReadonlyMap<string, cloudwatch.Alarm>;
  readonly dashboard: cloudwatch.Dashboard;
  private readonly alarmAction: cwActions.SnsAction;
  readonly namespace: string;

  constructor(scope: Construct, id: string, props: BackupObservabilityProps) {
    super(scope, id);
    this.namespace = props.namespace ?? 'Tidemark';
    validate(props);

    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'Tidemark: encrypts the alarm topic',
      enableKeyRotation: true,
    });
    // No aws:SourceArn/SourceAccount condition here: whether CloudWatch's KMS calls carry them is not
    // something to find out from pages that never arrived. The key encrypts only this topic, and the
    // topic policy below is what admits only this account's alarms.
    this.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublishToEncryptedTopic',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Tidemark backup alarms',
      masterKey: this.topicKey,
      enforceSSL: true,
    });
    // The SSL statement gives the topic an explicit policy, which replaces SNS's default one; say
    // outright that this account's alarms may publish.
    const { account, region, partition } = Stack.of(this);
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': account },
          ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
        },
      }),
    );
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const alarms = new Map<string, cloudwatch.Alarm>();
    this.alarms = alarms;
    this.alarmAction = new cwActions.SnsAction(this.topic);
    const add = (key: string, alarm: cloudwatch.Alarm): cloudwatch.Alarm => this.addAlarm(key, alarm);
    const stackName = Stack.of(this).stackName;

    for (const source of props.sources) {
      const scope = new Construct(this, `Source-${source.name}`);
      // Age grows one second per second, so waiting for 3 of 3 minutes costs 2 minutes against
      // RPOs of 5 minutes and more, and spares a page when one rpo-check run is lost or late.
      // Missing data is breaching: no datapoint means no backup at all, or a dead rpo-check.
      add(
        `${source.name}/RpoBreached`,
        new cloudwatch.Alarm(scope, 'RpoBreached', {
          alarmName: `${stackName}-${source.name}-RpoBreached`,
          alarmDescription:
            `Tidemark: the newest restorable point of '${source.name}' is older than its RPO (${source.rpoSeconds} s), ` +
            'or nothing is measured (no backup yet, or rpo-check not running). Check: tidemark list ' + source.name,
          metric: this.metricSecondsSinceNewestRestorablePoint(source.name, { period: Duration.minutes(1) }),
          threshold: source.rpoSeconds,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 3,
          datapointsToAlarm: 3,
          treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        }),
      );
      // Failures are events: silence means "none", and the alarm clears once a quiet period passes.
      add(
        `${source.name}/BackupFailed`,
        new cloudwatch.Alarm(scope, 'BackupFailed', {
          alarmName: `${stackName}-${source.name}-BackupFailed`,
          alarmDescription: `Tidemark: a backup run of '${source.name}' failed; the cause is in the record-result function's log.`,
          metric: this.metricBackupFailed(source.name, { period: Duration.minutes(5) }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      // Drills arrive later; until they run there is nothing to report, which is not a failure.
      add(
        `${source.name}/DrillFailed`,
        new cloudwatch.Alarm(scope, 'DrillFailed', {
          alarmName: `${stackName}-${source.name}-DrillFailed`,
          alarmDescription: `Tidemark: a restore drill of '${source.name}' failed: its backups may not restore. Check: tidemark drill ${source.name}`,
          metric: this.metricDrillFailed(source.name, { period: Duration.minutes(5) }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      if (source.rtoSeconds !== undefined) {
        // Measured (a drill's RTO) or predicted (history × size + rehydration): either above the
        // objective means a real restore would most likely miss it. The larger of the two decides.
        add(
          `${source.name}/RtoAtRisk`,
          new cloudwatch.Alarm(scope, 'RtoAtRisk', {
            alarmName: `${stackName}-${source.name}-RtoAtRisk`,
            alarmDescription:
              `Tidemark: a drill of '${source.name}' took, or is predicted to take, longer than its RTO (${source.rtoSeconds} s). ` +
              `Check the drill reports (tidemark report ${source.name}); a cold chain adds hours of rehydration.`,
            metric: this.metricDrillRtoOrPredicted(source.name),
            threshold: source.rtoSeconds,
            comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluationPeriods: 1,
            treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          }),
        );
      }
      const streamer = props.streamers?.get(source.name);
      if (streamer) {
        // Container Insights reports RunningTaskCount every minute while the service exists; no
        // data means the service or its metrics are gone, which is as bad as zero tasks.
        add(
          `${source.name}/StreamerDown`,
          new cloudwatch.Alarm(scope, 'StreamerDown', {
            alarmName: `${stackName}-${source.name}-StreamerDown`,
            alarmDescription:
              `Tidemark: the WAL/binlog streamer of '${source.name}' (${streamer.serviceName}) has no running task: ` +
              'the restorable point stops moving and the source may retain WAL/binlog until it returns.',
            metric: this.metricStreamerRunningTasks(streamer),
            threshold: 1,
            comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            treatMissingData: cloudwatch.TreatMissingData.BREACHING,
          }),
        );
      } else if (source.stream) {
        Annotations.of(this).addWarningV2(
          'tidemark:noStreamerAlarm',
          `source '${source.name}' streams WAL/binlog but no streamer service was given: it has no streamer-down alarm`,
        );
      }
    }
    this.dashboard = this.buildDashboard(props);
    if (props.stateMachine) this.watchStateMachine(props.stateMachine);
  }

  private addAlarm(key: string, alarm: cloudwatch.Alarm): cloudwatch.Alarm {
    alarm.addAlarmAction(this.alarmAction);
    alarm.addOkAction(this.alarmAction);
    (this.alarms as Map<string, cloudwatch.Alarm>).set(key, alarm);
    return alarm;
  }

  /**
   * Alarms on failed executions of the backup state machine and graphs its executions. A method,
   * not only a prop, because the state machine itself notifies this construct's topic.
   */
  watchStateMachine(sm: sfn.IStateMachine): void {
    const stackName = Stack.of(this).stackName;
    this.addAlarm(
      'ExecutionsFailed',
      new cloudwatch.Alarm(this, 'ExecutionsFailed', {
        alarmName: `${stackName}-BackupExecutionsFailed`,
        alarmDescription: 'Tidemark: a backup state machine execution failed (see its execution history).',
        metric: sm.metricFailed({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    const hourly = { period: Duration.hours(1), statistic: cloudwatch.Stats.SUM };
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Backup state machine executions',
        left: [
          sm.metricStarted({ ...hourly, label: 'started' }),
          sm.metricSucceeded({ ...hourly, label: 'succeeded', color: cloudwatch.Color.GREEN }),
          sm.metricFailed({ ...hourly, label: 'failed', color: cloudwatch.Color.RED }),
          sm.metricTimedOut({ ...hourly, label: 'timed out', color: cloudwatch.Color.ORANGE }),
          sm.metricAborted({ ...hourly, label: 'aborted', color: cloudwatch.Color.GREY }),
        ],
        leftYAxis: { min: 0, showUnits: false },
        width: 24,
      }),
    );
  }

  /**
   * Alarms when a scheduled function (retention, tiering) fails, and graphs its runs. Alarm key
   * `<name>Failed`. Failures are events: silence means none. `check`: what the person paged does.
   */
  watchFunction(name: string, fn: lambda.IFunction, what: string, check = 'Check: tidemark retention --all'): cloudwatch.Alarm {
    const daily = { period: Duration.days(1), statistic: cloudwatch.Stats.SUM };
    const alarm = this.addAlarm(
      `${name}Failed`,
      new cloudwatch.Alarm(this, `${name}Failed`, {
        alarmName: `${Stack.of(this).stackName}-${name}Failed`,
        alarmDescription: `Tidemark: the ${what} function failed; its log names the source and the cause. ${check}`,
        metric: fn.metricErrors({ period: Duration.hours(1), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: `${what} runs`,
        left: [
          fn.metricInvocations({ ...daily, label: 'runs' }),
          fn.metricErrors({ ...daily, label: 'failed', color: cloudwatch.Color.RED }),
        ],
        right: [fn.metricDuration({ period: Duration.days(1), statistic: cloudwatch.Stats.MAXIMUM, label: 'duration (max)' })],
        leftYAxis: { min: 0, showUnits: false },
        view: cloudwatch.GraphWidgetView.BAR,
        width: 12,
      }),
    );
    return alarm;
  }

  /**
   * A contract metric of one source (namespace and `Source` dimension filled in). No unit filter:
   * an alarm filtered on a unit the emitter does not use sees no data, and for a failure alarm
   * (missing = not breaching) that would be silence.
   */
  metric(name: SourceMetricName, source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName: name,
      dimensionsMap: { Source: source },
      ...props,
    });
  }

  /** Age of the newest restorable point. @default Maximum over 1 minute */
  metricSecondsSinceNewestRestorablePoint(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('SecondsSinceNewestRestorablePoint', source, { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(1), ...props });
  }

  /** Failed backup runs. @default Sum over 5 minutes */
  metricBackupFailed(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('BackupFailed', source, { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5), ...props });
  }

  /** Successful backup runs. @default Sum over 5 minutes */
  metricBackupSucceeded(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('BackupSucceeded', source, { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5), ...props });
  }

  /** Stored (compressed, encrypted) size of each successful backup. @default Maximum over 1 hour */
  metricBackupStoredBytes(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('BackupStoredBytes', source, { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1), ...props });
  }

  /** Failed restore drills. @default Sum over 5 minutes */
  metricDrillFailed(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('DrillFailed', source, { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5), ...props });
  }

  /** Passed restore drills. @default Sum over 5 minutes */
  metricDrillSucceeded(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('DrillSucceeded', source, { statistic: cloudwatch.Stats.SUM, period: Duration.minutes(5), ...props });
  }

  /** Measured RTO of each drill (start → checks passed). @default Maximum over 1 hour */
  metricDrillRtoSeconds(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('DrillRtoSeconds', source, { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1), ...props });
  }

  /** Measured RPO of each drill (target − newest point restored). @default Maximum over 1 hour */
  metricDrillRpoSeconds(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('DrillRpoSeconds', source, { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1), ...props });
  }

  /** Predicted RTO reported with each drill. @default Maximum over 1 hour */
  metricDrillPredictedRtoSeconds(source: string, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.metric('DrillPredictedRtoSeconds', source, { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.hours(1), ...props });
  }

  /** The larger of the measured and the predicted RTO, per hour (what RtoAtRisk watches). */
  metricDrillRtoOrPredicted(source: string, period: Duration = Duration.hours(1)): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: 'MAX([measured, predicted])',
      usingMetrics: {
        measured: this.metricDrillRtoSeconds(source, { period }),
        predicted: this.metricDrillPredictedRtoSeconds(source, { period }),
      },
      period,
      label: 'RTO (measured or predicted, max)',
    });
  }

  /** Running tasks of a streamer service (Container Insights). @default Minimum over 1 minute */
  metricStreamerRunningTasks(streamer: StreamerService, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: streamer.clusterName, ServiceName: streamer.serviceName },
      statistic: cloudwatch.Stats.MINIMUM,
      period: Duration.minutes(1),
      ...props,
    });
  }

  private buildDashboard(props: BackupObservabilityProps): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.days(7) });
    dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Tidemark alarms',
        alarms: [...this.alarms.values()],
        width: 24,
        height: Math.min(12, 2 + Math.ceil(this.alarms.size / 4)),
      }),
    );
    for (const source of props.sources) {
      const name = source.name;
      const widgets: cloudwatch.IWidget[] = [
        new cloudwatch.GraphWidget({
          title: `${name}: seconds since newest restorable point`,
          left: [this.metricSecondsSinceNewestRestorablePoint(name, { period: Duration.minutes(5), label: 'age (max)' })],
          leftAnnotations: [{ value: source.rpoSeconds, label: `RPO ${source.rpoSeconds} s`, color: cloudwatch.Color.RED }],
          leftYAxis: { min: 0, label: 'seconds', showUnits: false },
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: `${name}: stored bytes per backup`,
          left: [this.metricBackupStoredBytes(name, { label: 'stored bytes' })],
          leftYAxis: { min: 0 },
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: `${name}: backups and drills`,
          left: [
            this.metricBackupSucceeded(name, { period: Duration.hours(1), label: 'succeeded', color: cloudwatch.Color.GREEN }),
            this.metricBackupFailed(name, { period: Duration.hours(1), label: 'failed', color: cloudwatch.Color.RED }),
            this.metricDrillSucceeded(name, { period: Duration.hours(1), label: 'drill passed', color: cloudwatch.Color.BLUE }),
            this.metricDrillFailed(name, { period: Duration.hours(1), label: 'drill failed', color: cloudwatch.Color.ORANGE }),
          ],
          leftYAxis: { min: 0, showUnits: false },
          view: cloudwatch.GraphWidgetView.BAR,
          width: 8,
        }),
      ];
      widgets.push(
        new cloudwatch.GraphWidget({
          title: `${name}: drill RTO (measured, predicted)`,
          left: [
            this.metricDrillRtoSeconds(name, { period: Duration.days(1), label: 'RTO measured' }),
            this.metricDrillPredictedRtoSeconds(name, { period: Duration.days(1), label: 'RTO predicted', color: cloudwatch.Color.GREY }),
          ],
          leftAnnotations: source.rtoSeconds !== undefined ? [{ value: source.rtoSeconds, label: `RTO objective ${source.rtoSeconds} s`, color: cloudwatch.Color.RED }] : [],
          leftYAxis: { min: 0, label: 'seconds', showUnits: false },
          width: 12,
        }),
        new cloudwatch.GraphWidget({
          title: `${name}: drill RPO`,
          left: [this.metricDrillRpoSeconds(name, { period: Duration.days(1), label: 'RPO measured' })],
          leftAnnotations: [{ value: source.rpoSeconds, label: `RPO objective ${source.rpoSeconds} s`, color: cloudwatch.Color.RED }],
          leftYAxis: { min: 0, label: 'seconds', showUnits: false },
          width: 12,
        }),
      );
      dashboard.addWidgets(...widgets);
    }
    if (props.streamers && props.streamers.size > 0) {
      dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: 'WAL/binlog streamers: running tasks',
          left: [...props.streamers].map(([name, streamer]) => this.metricStreamerRunningTasks(streamer, { label: name })),
          leftYAxis: { min: 0, showUnits: false },
          width: 24,
        }),
      );
    }
    return dashboard;
  }
}

function validate(props: BackupObservabilityProps): void {
  const names = props.sources.map((s) => s.name);
  if (names.length === 0) throw new Error('BackupObservability: sources is empty; there would be nothing to watch');
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new Error(`BackupObservability: source '${duplicate}' is listed twice`);
  for (const s of props.sources) {
    if (!Number.isFinite(s.rpoSeconds) || s.rpoSeconds <= 0) {
      throw new Error(`BackupObservability: source '${s.name}' has rpoSeconds ${s.rpoSeconds}; it must be a positive number of seconds`);
    }
  }
  for (const name of props.streamers?.keys() ?? []) {
    if (!names.includes(name)) throw new Error(`BackupObservability: streamer given for '${name}', which is not one of the sources (${names.join(', ')})`);
  }
  if (props.alarmEmail !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(props.alarmEmail)) {
    throw new Error(`BackupObservability: alarmEmail '${props.alarmEmail}' is not an email address`);
  }
  if (props.namespace !== undefined && !/^[^:]{1,255}$/.test(props.namespace)) {
    throw new Error(`BackupObservability: namespace '${props.namespace}' must be 1–255 characters without ':'`);
  }
}
