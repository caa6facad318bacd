from anchordet.postprocess.dense import DensePostprocess
from anchordet.postprocess.proposals import ProposalGenerator, Proposals, ProposalSettings
from anchordet.postprocess.rescale import rescale_detections

__all__ = ["DensePostprocess", "ProposalGenerator", "ProposalSettings", "Proposals", "rescale_detections"]
