"""The root config node: yacs' CfgNode whose unknown-key errors name the closest known key."""
from __future__ import annotations

import difflib
from typing import Any, Iterator

from yacs.config import CfgNode

_UNKNOWN_KEY = "Non-existent config key: "


def _full_keys(node: CfgNode, prefix: str = "") -> Iterator[str]:
    for k, v in node.items():
        yield prefix + k
        if isinstance(v, CfgNode):
            yield from _full_keys(v, f"{prefix}{k}.")


class Config(CfgNode):
    """Root of the config tree. Children stay plain yacs CfgNodes, as consumers create them."""

    @classmethod
    def _decode_cfg_value(cls, value: Any) -> Any:
        # yacs builds merged sub-trees with the class of the node merged into; at the root that
        # would make them Config, and yacs' exact-type check would then reject merging them into
        # the plain CfgNodes that consumers' extend_cfg adds (e.g. TRAINER.COOP).
        if isinstance(value, dict):
            return CfgNode(value)
        return super()._decode_cfg_value(value)

    def unknown_key_message(self, full_key: str) -> str:
        """yacs' message plus the closest existing key, if any is close."""
        close = difflib.get_close_matches(full_key, list(_full_keys(self)), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{_UNKNOWN_KEY}{full_key}{hint}"

    def _has_key(self, full_key: str) -> bool:
        node: Any = self
        for subkey in full_key.split("."):
            if not isinstance(node, CfgNode) or subkey not in node:
                return False
            node = node[subkey]
        return True

    def merge_from_other_cfg(self, cfg_other: CfgNode) -> None:
        try:
            super().merge_from_other_cfg(cfg_other)
        except KeyError as e:
            msg = e.args[0] if e.args else ""
            if isinstance(msg, str) and msg.startswith(_UNKNOWN_KEY):
                raise KeyError(self.unknown_key_message(msg[len(_UNKNOWN_KEY):])) from None
            raise

    def merge_from_file(self, cfg_filename: str) -> None:
        try:
            super().merge_from_file(cfg_filename)
        except KeyError as e:
            raise KeyError(f"{cfg_filename}: {e.args[0]}") from None
        except ValueError as e:
            raise ValueError(f"{cfg_filename}: {e}") from None

    def merge_from_list(self, cfg_list: list) -> None:
        # yacs reports these with bare asserts; make them the errors a user can act on.
        if len(cfg_list) % 2 != 0:
            raise ValueError(f"Config options must be KEY VALUE pairs, got an odd number: {cfg_list}")
        for full_key in cfg_list[0::2]:
            if self._has_key(full_key) or full_key in self.__dict__[CfgNode.DEPRECATED_KEYS]:
                continue
            if self.key_is_renamed(full_key):
                self.raise_key_rename_error(full_key)
            raise KeyError(self.unknown_key_message(full_key))
        super().merge_from_list(cfg_list)
