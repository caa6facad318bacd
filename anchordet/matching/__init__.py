from anchordet.matching.iou_matcher import IGNORE, NEGATIVE, POSITIVE, IoUMatcher, MatchResult

__all__ = ["IoUMatcher", "MatchResult", "IGNORE", "NEGATIVE", "POSITIVE"]
