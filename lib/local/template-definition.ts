/**
 * The state-machine definition (ASL) inside a synthesized CloudFormation template, made runnable
 * without AWS: CloudFormation functions are evaluated and every reference to a resource becomes a
 * placeholder that keeps its logical id, so a local resolver can tell which function a Task calls
 * (`arn:aws:lambda:local:000000000000:function:RecordResultFE752801`).
 *
 * Pure: the caller synthesizes the template; nothing here knows CDK.
 */

/** Placeholder environment of every resolved ARN. */
export const LOCAL_PARTITION = 'aws';
export const LOCAL_REGION = 'local';
export const LOCAL_ACCOUNT = '000000000000';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, Json>;
}

interface Template {
  readonly Resources?: Record<string, TemplateResource>;
  readonly Parameters?: Record<string, { Default?: Json }>;
}

/** The template has no such state machine, or the definition uses what cannot be resolved locally. */
export class TemplateDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * The definition of the one `AWS::StepFunctions::StateMachine` in `template` (or of the one whose
 * logical id starts with `logicalIdPrefix`), as parsed ASL with placeholders for ARNs.
 */
export function stateMachineDefinition(template: object, logicalIdPrefix?: string): object {
  const t = template as Template;
  const machines = Object.entries(t.Resources ?? {}).filter(
    ([id, r]) => r.Type === 'AWS::StepFunctions::StateMachine' && id.startsWith(logicalIdPrefix ?? ''),
  );
  const wanted = logicalIdPrefix ? ` whose logical id starts with "${logicalIdPrefix}"` : '';
  if (machines.length === 0) {
    throw new TemplateDefinitionError(`the template has no AWS::StepFunctions::StateMachine${wanted}`);
  }
  if (machines.length > 1) {
    throw new TemplateDefinitionError(
      `the template has ${machines.length} state machines${wanted} (${machines.map(([id]) => id).join(', ')}); pass a logical id prefix that picks one`,
    );
  }
  const [logicalId, machine] = machines[0];
  const props = machine.Properties ?? {};
  const context = new Resolution(t, logicalId);
  const substitutions = Object.fromEntries(
    Object.entries((props.DefinitionSubstitutions ?? {}) as Record<string, Json>).map(([k, v]) => [k, context.resolve(v)]),
  );
  if (props.DefinitionString !== undefined) {
    const text = context.resolve(props.DefinitionString);
    if (typeof text !== 'string') throw new TemplateDefinitionError(`${logicalId}: DefinitionString did not resolve to a string`);
    const parsed = JSON.parse(substitute(text, substitutions, logicalId, JSON.stringify)) as Json;
    return parsed as object;
  }
  if (props.Definition !== undefined) {
    return substituteDeep(context.resolve(props.Definition), substitutions, logicalId) as object;
  }
  throw new TemplateDefinitionError(`${logicalId}: the definition is neither DefinitionString nor Definition (an S3 location cannot be read locally)`);
}

/** `${Name}` of DefinitionSubstitutions, inside the JSON text (values inserted JSON-escaped). */
function substitute(text: string, substitutions: Record<string, Json>, logicalId: string, escape: (s: string) => string): string {
  return text.replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
    if (!(name in substitutions)) return whole; // not ours: JSONPath or intrinsics never use ${...}, leave it
    const value = substitutions[name];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new TemplateDefinitionError(`${logicalId}: DefinitionSubstitutions.${name} is not a string`);
    }
    // Inside a JSON string literal: escape as JSON and drop the surrounding quotes.
    return escape(String(value)).slice(1, -1);
  });
}

function substituteDeep(value: Json, substitutions: Record<string, Json>, logicalId: string): Json {
  if (typeof value === 'string') return substitute(value, substitutions, logicalId, (s) => `"${s}"`);
  if (Array.isArray(value)) return value.map((v) => substituteDeep(v, substitutions, logicalId));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteDeep(v, substitutions, logicalId)]));
  }
  return value;
}

const PSEUDO_PARAMETERS: Readonly<Record<string, string>> = {
  'AWS::Partition': LOCAL_PARTITION,
  'AWS::Region': LOCAL_REGION,
  'AWS::AccountId': LOCAL_ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'local',
  'AWS::StackId': `arn:${LOCAL_PARTITION}:cloudformation:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stack/local/00000000-0000-0000-0000-000000000000`,
};

/** Evaluates CloudFormation functions in one state machine's properties. */
class Resolution {
  constructor(
    private readonly template: Template,
    private readonly machineId: string,
  ) {}

  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) return this.intrinsic(keys[0], value[keys[0]]);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
  }

  private intrinsic(name: string, arg: Json): Json {
    switch (name) {
      case 'Ref':
        return this.ref(this.string(arg, name));
      case 'Fn::GetAtt': {
        const [id, attribute] = typeof arg === 'string' ? splitOnce(arg, '.') : (this.resolve(arg) as string[]);
        return this.getAtt(String(id), String(attribute));
      }
      case 'Fn::Join': {
        const [delimiter, items] = this.list(arg, name, 2);
        const values = this.resolve(items);
        if (!Array.isArray(values)) throw this.error(`${name} expects a list to join`);
        return values.map((v) => this.string(v, name)).join(this.string(delimiter, name));
      }
      case 'Fn::Select': {
        const [index, items] = this.list(arg, name, 2);
        const values = this.resolve(items);
        const i = Number(this.resolve(index));
        if (!Array.isArray(values) || !Number.isInteger(i) || i < 0 || i >= values.length) {
          throw this.error(`${name} index ${JSON.stringify(index)} is outside ${JSON.stringify(values)}`);
        }
        return values[i];
      }
      case 'Fn::Split': {
        const [delimiter, source] = this.list(arg, name, 2);
        return this.string(this.resolve(source), name).split(this.string(delimiter, name));
      }
      case 'Fn::Sub':
        return this.sub(arg);
      case 'Fn::ImportValue':
        return `imported-${this.string(this.resolve(arg), name)}`;
      case 'Fn::GetAZs':
        return [`${LOCAL_REGION}-1a`, `${LOCAL_REGION}-1b`];
      default:
        throw this.error(`${name} cannot be evaluated locally`);
    }
  }

  private sub(arg: Json): string {
    const [text, vars] = Array.isArray(arg) ? [arg[0], (arg[1] ?? {}) as Record<string, Json>] : [arg, {} as Record<string, Json>];
    return this.string(text, 'Fn::Sub').replace(/\$\{(!?)([^}]+)\}/g, (_whole, literal: string, name: string) => {
      if (literal) return `\${${name}}`;
      if (name in vars) return this.string(this.resolve(vars[name]), 'Fn::Sub');
      if (name in PSEUDO_PARAMETERS || !name.includes('.')) return this.string(this.ref(name), 'Fn::Sub');
      const [id, attribute] = splitOnce(name, '.');
      return this.string(this.getAtt(id, attribute), 'Fn::Sub');
    });
  }

  private ref(name: string): Json {
    if (name in PSEUDO_PARAMETERS) return PSEUDO_PARAMETERS[name];
    const parameter = this.template.Parameters?.[name];
    if (parameter) return parameter.Default ?? `parameter-${name}`;
    const type = this.template.Resources?.[name]?.Type;
    switch (type) {
      // Ref returns the ARN for these types, a name or id for most others.
      case 'AWS::SNS::Topic':
      case 'AWS::ECS::TaskDefinition':
      case 'AWS::StepFunctions::StateMachine':
        return placeholderArn(type, name);
      case 'AWS::SQS::Queue':
        return `https://sqs.${LOCAL_REGION}.amazonaws.com/${LOCAL_ACCOUNT}/${name}`;
      case 'AWS::EC2::Subnet':
        return `subnet-${name}`;
      case 'AWS::EC2::SecurityGroup':
        return `sg-${name}`;
      case 'AWS::EC2::VPC':
        return `vpc-${name}`;
      case 'AWS::S3::Bucket':
        return name.toLowerCase();
      default:
        return name;
    }
  }

  private getAtt(id: string, attribute: string): Json {
    const type = this.template.Resources?.[id]?.Type ?? 'AWS::Unknown::Resource';
    if (attribute === 'Arn') return placeholderArn(type, id);
    if (attribute === 'GroupId') return `sg-${id}`;
    if (attribute === 'QueueUrl') return `https://sqs.${LOCAL_REGION}.amazonaws.com/${LOCAL_ACCOUNT}/${id}`;
    if (/Name$/.test(attribute)) return id;
    return `${id}.${attribute}`;
  }

  private list(arg: Json, name: string, length: number): Json[] {
    if (!Array.isArray(arg) || arg.length !== length) throw this.error(`${name} expects a list of ${length}`);
    return arg;
  }

  private string(value: Json, name: string): string {
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    throw this.error(`${name} expects a string, got ${JSON.stringify(value)}`);
  }

  private error(message: string): TemplateDefinitionError {
    return new TemplateDefinitionError(`${this.machineId}: ${message}`);
  }
}

/**
 * A recognisable ARN for a resource of the template: service and resource type from the
 * CloudFormation type, the logical id as the resource name.
 */
export function placeholderArn(type: string, logicalId: string): string {
  const at = (service: string, resource: string, region = LOCAL_REGION, account = LOCAL_ACCOUNT) =>
    `arn:${LOCAL_PARTITION}:${service}:${region}:${account}:${resource}`;
  switch (type) {
    case 'AWS::Lambda::Function':
      return at('lambda', `function:${logicalId}`);
    case 'AWS::ECS::Cluster':
      return at('ecs', `cluster/${logicalId}`);
    case 'AWS::ECS::TaskDefinition':
      return at('ecs', `task-definition/${logicalId}:1`);
    case 'AWS::SNS::Topic':
      return at('sns', logicalId);
    case 'AWS::SQS::Queue':
      return at('sqs', logicalId);
    case 'AWS::StepFunctions::StateMachine':
      return at('states', `stateMachine:${logicalId}`);
    case 'AWS::Logs::LogGroup':
      return at('logs', `log-group:${logicalId}:*`);
    case 'AWS::IAM::Role':
      return at('iam', `role/${logicalId}`, '');
    case 'AWS::S3::Bucket':
      return at('s3', logicalId.toLowerCase(), '', '');
    default: {
      const [, service = 'unknown', kind = 'resource'] = type.split('::');
      return at(service.toLowerCase(), `${kind.toLowerCase()}/${logicalId}`);
    }
  }
}

function splitOnce(text: string, separator: string): [string, string] {
  const i = text.indexOf(separator);
  return i < 0 ? [text, ''] : [text.slice(0, i), text.slice(i + 1)];
}
