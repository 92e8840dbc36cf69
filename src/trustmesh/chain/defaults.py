"""Deployment defaults, in a module that imports nothing heavy (the CLI reads
them without loading web3 or py-evm)."""

DEFAULT_MIN_STAKE = 10**16  # 0.01 of the native currency
DEFAULT_UNBONDING_DELAY = 7 * 24 * 3600
DEFAULT_REWARD_BPS = 5_000  # half of a slash goes to the reporter
DEFAULT_MAX_MERGE_DELAY = 3600  # seconds a node has to anchor a notarized checkpoint
DEFAULT_CLAIM_BOND = 10**16  # an aggregate claim's bond: half goes to whoever proves it false
DEFAULT_CLAIM_WINDOW = 24 * 3600  # seconds an aggregate claim can be challenged
