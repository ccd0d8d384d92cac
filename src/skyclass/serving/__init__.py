"""Serving: bundle loading, ONNX classifier, Lambda events and handler, local HTTP server.

Nothing in this package imports torch or any training module: the Lambda package holds only
numpy, Pillow and onnxruntime (plus boto3 for models in S3). Import submodules explicitly.
"""
