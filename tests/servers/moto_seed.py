#!/usr/bin/env python3
"""Seed and inspect a moto server for the S3 backend tests (python3 + boto3 from the image's pyenv).

  moto_seed.py setup   --endpoint URL [--ca FILE] [--bucket NAME ...]
      With moto's auth still off (moto_server started with a large INITIAL_NO_AUTH_ACTION_COUNT):
      creates an IAM user with an access key and an inline s3:* policy, and a role with an s3:*
      policy that it assumes through STS (temporary credentials with a session token: moto checks
      those, while get_session_token's are not verifiable). Then turns auth on for every later
      request (POST /moto-api/reset-auth "0") and creates the buckets with the user's key, which
      proves signed requests work. Prints the credentials as one JSON object on stdout.
  moto_seed.py mb      --endpoint URL --key-id ID --secret S [--ca FILE] --bucket NAME ...   (existing ones are fine)
  moto_seed.py put     --endpoint URL --key-id ID --secret S [--ca FILE] --bucket NAME
                       --key-prefix P --count N [--body TEXT]
      Puts N objects P00000 .. P{N-1} (8 threads).
  moto_seed.py put-one ... --bucket NAME --key K [--body TEXT]
  moto_seed.py get     ... --bucket NAME --key K      (prints the body; exit 3 when missing)
  moto_seed.py list    ... --bucket NAME              (prints every key as a JSON list)

Every request after setup is signed with the given key, through boto3: an independent SigV4
implementation checks the server state the C++ backend left behind.
"""
import argparse
import json
import sys
import urllib.request
import ssl
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
import botocore.exceptions

REGION = "us-east-1"
S3_ALL = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
})
ALL = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
})
# moto (auth on) checks the caller against the trust policy's principals literally: the administrator
# is named so that tests/servers/aws_identity_server.py may assume the role with its key.
TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow",
                   "Principal": {"AWS": ["arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/admin"]},
                   "Action": "sts:AssumeRole"}],
})


def client(service, args, key_id="seed", secret="seed", token=None):
    return boto3.client(
        service,
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        verify=args.ca if args.ca else True,
        config=botocore.config.Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 3, "mode": "standard"},
                                      max_pool_connections=16),
    )


def s3_for(args):
    return client("s3", args, args.key_id, args.secret)


def setup(args):
    iam = client("iam", args)
    iam.create_user(UserName="stowage")
    key = iam.create_access_key(UserName="stowage")["AccessKey"]
    iam.put_user_policy(UserName="stowage", PolicyName="s3-all", PolicyDocument=S3_ALL)

    # An administrator, for what tests do to the stowage user behind its back (revoking its key).
    iam.create_user(UserName="admin")
    admin = iam.create_access_key(UserName="admin")["AccessKey"]
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ALL)

    role = iam.create_role(RoleName="stowage-role", AssumeRolePolicyDocument=TRUST)["Role"]
    iam.put_role_policy(RoleName="stowage-role", PolicyName="s3-all", PolicyDocument=S3_ALL)
    sts = client("sts", args)
    session = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="stowage-test",
                              DurationSeconds=3600)["Credentials"]

    # Auth on from here: every later request must carry a valid signature.
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    request = urllib.request.Request(args.endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, context=context) as reply:
        reply.read()

    s3 = client("s3", args, key["AccessKeyId"], key["SecretAccessKey"])
    for bucket in args.bucket or []:
        s3.create_bucket(Bucket=bucket)

    json.dump({
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "admin": {"access_key_id": admin["AccessKeyId"], "secret_access_key": admin["SecretAccessKey"]},
        "session": {
            "access_key_id": session["AccessKeyId"],
            "secret_access_key": session["SecretAccessKey"],
            "session_token": session["SessionToken"],
        },
    }, sys.stdout)
    print()


def make_buckets(args):
    """Creates the buckets; one that exists already is fine (a test may run several sections)."""
    s3 = s3_for(args)
    for bucket in args.bucket:
        try:
            s3.create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


def put(args):
    s3 = s3_for(args)
    keys = [f"{args.key_prefix}{i:05d}" for i in range(args.count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=args.bucket[0], Key=k, Body=args.body.encode()), keys))


def put_one(args):
    s3_for(args).put_object(Bucket=args.bucket[0], Key=args.key, Body=args.body.encode())


def get(args):
    try:
        body = s3_for(args).get_object(Bucket=args.bucket[0], Key=args.key)["Body"].read()
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
            sys.exit(3)
        raise
    sys.stdout.write(body.decode())


def revoke(args):
    """Deletes the stowage user's access key --key (run with the admin's credentials)."""
    client("iam", args, args.key_id, args.secret).delete_access_key(UserName="stowage", AccessKeyId=args.key)


def remove_bucket(args):
    """Empties the bucket and deletes it."""
    s3 = s3_for(args)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket[0]):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=args.bucket[0], Key=item["Key"])
    s3.delete_bucket(Bucket=args.bucket[0])


def list_keys(args):
    s3 = s3_for(args)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket[0]):
        keys += [item["Key"] for item in page.get("Contents", [])]
    json.dump(keys, sys.stdout)
    print()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["setup", "mb", "rb", "put", "put-one", "get", "list",
                                                      "revoke"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ca", default="")
    parser.add_argument("--key-id", default="")
    parser.add_argument("--secret", default="")
    parser.add_argument("--bucket", action="append")
    parser.add_argument("--key", default="")
    parser.add_argument("--key-prefix", default="")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--body", default="x")
    args = parser.parse_args()
    {"setup": setup, "mb": make_buckets, "put": put, "put-one": put_one, "get": get,
     "list": list_keys, "revoke": revoke, "rb": remove_bucket}[args.command](args)


if __name__ == "__main__":
    main()
