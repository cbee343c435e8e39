import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * cdk-nag 3 acknowledges findings by exact id, and the ids spell resolved CloudFormation values its
 * own way (`AwsSolutions-IAM5[Resource::<Bucket.Arn>/tidemark/*]`). Constructs that acknowledge a
 * deliberate wildcard build those ids with this one function.
 */

/** A resolved value as cdk-nag names it: `${Token}` → `<Token>`, Fn::GetAtt → `<Id.Attr>`, Ref → `<Id>`, Fn::Join joined. */
export function nagReference(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (value !== null && typeof value === 'object') {
    const fn = value as Record<string, unknown>;
    if (Array.isArray(fn['Fn::Join'])) {
      const [delimiter, items] = fn['Fn::Join'] as [string, unknown[]];
      return items.map(nagReference).join(delimiter);
    }
    if (fn['Fn::Sub'] !== undefined) return nagReference(fn['Fn::Sub']);
    if (Array.isArray(fn['Fn::GetAtt'])) {
      const [logicalId, attribute] = fn['Fn::GetAtt'] as unknown[];
      return `<${nagReference(logicalId)}.${nagReference(attribute)}>`;
    }
    if (fn['Fn::ImportValue'] !== undefined) return nagReference(fn['Fn::ImportValue']);
    if (fn.Ref !== undefined) return `<${nagReference(fn.Ref)}>`;
  }
  return JSON.stringify(value);
}

/** An IAM statement's Action or Resource (a value or a list) as a list. */
export function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined ? [] : [value];
}

/** Statements whose wildcard resources an integration requires, and why. */
export interface RequiredWildcard {
  readonly actions: readonly string[];
  readonly reason: string;
}

/**
 * Acknowledges the cdk-nag IAM5 findings (wildcards) of a role's default policy that the
 * integrations require, statement by statement, each with its reason. A wildcard from any other
 * statement stays a finding.
 */
export function acknowledgeRequiredWildcards(role: iam.IRole, wildcards: readonly RequiredWildcard[]): void {
  const policy = role.node.tryFindChild('DefaultPolicy');
  if (!(policy instanceof iam.Policy)) return;
  const document = Stack.of(policy).resolve(policy.document.toJSON()) as { Statement?: { Effect: string; Action: unknown; Resource: unknown }[] } | undefined;
  const reasons = new Map<string, Set<string>>();
  for (const statement of document?.Statement ?? []) {
    if (statement.Effect !== 'Allow') continue;
    const actions = asList(statement.Action).map(String);
    const reason = wildcards.find((w) => actions.every((a) => w.actions.includes(a)))?.reason;
    if (!reason) continue;
    for (const resource of asList(statement.Resource).map(nagReference).filter((r) => r.includes('*'))) {
      const id = `AwsSolutions-IAM5[Resource::${resource}]`;
      reasons.set(id, (reasons.get(id) ?? new Set()).add(reason));
    }
  }
  for (const [id, why] of reasons) Validations.of(policy).acknowledge({ id, reason: [...why].join(' ') });
}
