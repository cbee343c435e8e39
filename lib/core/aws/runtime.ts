/** The Lambda runtime sets AWS_LAMBDA_FUNCTION_NAME for every function; nothing else does. */
export function onLambda(): boolean {
  return Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME);
}
