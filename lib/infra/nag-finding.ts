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
