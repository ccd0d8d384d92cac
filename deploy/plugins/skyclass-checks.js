'use strict';

// Two guards for this service, loaded before the other plugins.
//
// 1. Serverless Framework v3 (final release 3.40.0) predates python3.12 in its configuration
//    schema, although AWS Lambda supports it (and no longer accepts python3.8 for new
//    functions). The value is passed through to CloudFormation unchanged; only the schema
//    check rejects it. Adding the newer runtimes to the schema lets `configValidationMode:
//    error` stay on, which catches real mistakes such as `memory:` instead of `memorySize:`.
// 2. The Lambda's Python requirements file is written by `skyclass deploy` (it names a freshly
//    built skyclass wheel). Without it serverless-python-requirements silently packages no
//    Python code at all and the function fails at import; stop with a clear message instead.
const fs = require('fs');
const path = require('path');

const EXTRA_RUNTIMES = ['python3.12', 'python3.13'];

class SkyclassChecks {
  constructor(serverless) {
    this.serverless = serverless;
    const handler = serverless.configSchemaHandler;
    const runtimes =
      handler && handler.schema && handler.schema.definitions
        ? handler.schema.definitions.awsLambdaRuntime
        : undefined;
    if (runtimes && Array.isArray(runtimes.enum)) {
      for (const runtime of EXTRA_RUNTIMES) {
        if (!runtimes.enum.includes(runtime)) runtimes.enum.push(runtime);
      }
    }
    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.checkRequirements(),
      'before:deploy:function:packageFunction': () => this.checkRequirements(),
    };
  }

  checkRequirements() {
    const custom = this.serverless.service.custom || {};
    const fileName = (custom.pythonRequirements || {}).fileName || 'requirements.txt';
    const file = path.join(this.serverless.serviceDir, fileName);
    if (!fs.existsSync(file)) {
      throw new this.serverless.classes.Error(
        `${fileName} is missing: it is written by \`skyclass deploy BUNDLE_DIR --bucket B\` ` +
          '(use --package-only to only build the package), which also builds the skyclass ' +
          'wheel it names. Run that instead of `serverless package|deploy` directly.'
      );
    }
  }
}

module.exports = SkyclassChecks;
