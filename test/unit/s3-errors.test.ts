import { ListObjectsV2Command, PutObjectCommand, HeadObjectCommand, S3Client, S3ServiceException, GetObjectCommand } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { mockClient } from 'aws-sdk-client-mock';
import { StorageError } from '../../lib/core/errors';
import { S3Store } from '../../lib/core/repository/s3-store';

/** S3 answers no local endpoint gives: each becomes one StorageError line of the right kind. */
const s3 = mockClient(S3Client);
const store = () => new S3Store({ bucket: 'vault', prefix: 'tm', region: 'eu-west-1', forcePathStyle: false });
const failure = (name: string, status: number) =>
  new S3ServiceException({ name, $fault: 'client', message: name, $metadata: { httpStatusCode: status } });

beforeEach(() => s3.reset());

async function caught(p: Promise<unknown>): Promise<StorageError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(StorageError);
  return err as StorageError;
}

describe('S3 error mapping', () => {
  it('a bare 404 on a listing is the bucket, not a key', async () => {
    s3.on(ListObjectsV2Command).rejects(failure('UnknownError', 404));
    const err = await caught(store().list('app/backups/'));
    expect(err.message).toBe("bucket 'vault' does not exist at https://s3.eu-west-1.amazonaws.com");
  });

  it('a 404 on a read is a missing key', async () => {
    s3.on(GetObjectCommand).rejects(failure('UnknownError', 404));
    const err = await caught(store().get('app/backups/x/dump'));
    expect(err.code).toBe('NoSuchKey');
    expect(err.message).toBe('no object at s3://vault/tm/app/backups/x/dump');
  });

  it('409 ConditionalRequestConflict on a create-only write means the key is taken', async () => {
    s3.on(HeadObjectCommand).rejects(failure('NotFound', 404));
    s3.on(PutObjectCommand).rejects(failure('ConditionalRequestConflict', 409));
    const err = await caught(store().put('app/backups/x/manifest.json', Readable.from([Buffer.from('{}')])));
    expect(err.code).toBe('ObjectExists');
    expect(err.message).toBe('object already exists at s3://vault/tm/app/backups/x/manifest.json; objects are never overwritten');
  });
});
