# One image for every node of cluster.yaml and cluster-gcp.yaml: Ray 2.60 on Python 3.11, the
# locked stack (requirements/lock.txt; torch 2.14.1 is built for CUDA 13.0, so GPU hosts need an
# NVIDIA driver >= 580) and ltray itself. A new node's set-up is then a `docker pull`, not several
# GB of pip installs. Build and push it once per ltray version (docs/cluster.md, "The node image"):
#   docker build -t <registry>/ltray:0.3.0 .  &&  docker push <registry>/ltray:0.3.0
# The tag must be ltray's version: `ltray check` compares them.
FROM rayproject/ray:2.60.0-py311-gpu

# the heavy, rarely changing layer first: the pinned stack, from the lock alone
COPY --chown=ray:users requirements/lock.txt /home/ray/lock.txt
RUN pip install --no-cache-dir -c /home/ray/lock.txt "torch" "torchvision" "ray[default,tune]" \
        "pandas" "pyarrow" "pydantic" "pyyaml" "mlxtend" "scikit-learn" "tqdm" "matplotlib" "boto3"

# then ltray (a source checkout, so `ltray --version` names its git revision when .git is copied)
COPY --chown=ray:users . /home/ray/ltray
RUN pip install --no-cache-dir -c /home/ray/lock.txt -e "/home/ray/ltray[sweep,analysis]" \
    && python -c "import ltray, torch, ray; print('ltray', ltray.__version__, 'torch', torch.__version__, 'ray', ray.__version__)"

WORKDIR /home/ray
