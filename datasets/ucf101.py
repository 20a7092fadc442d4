"""UCF101 middle frames: trainlist01 -> 80/20 train/val, testlist01 -> test."""
from __future__ import annotations

import os
import re

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .base import Benchmark
from .splits import split_trainval


def action_name(action: str) -> str:
    """"ApplyEyeMakeup" -> "Apply_Eye_Makeup", "YoYo" -> "Yo_Yo" (a cut before each capital)."""
    return "_".join(part for part in re.split(r"(?=[A-Z])", action) if part)


@DATASET_REGISTRY.register()
class UCF101(Benchmark):
    dataset_dir = "ucf101"
    image_subdir = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
    section = "UCF101"

    def create_split(self):
        list_dir = os.path.join(self.dataset_dir, "ucfTrainTestlist")
        cname2lab = {}
        with open(self.require(os.path.join(list_dir, "classInd.txt"), "class list"),
                  "r", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    class_id, action = line.split()
                    cname2lab[action] = int(class_id) - 1
        trainval = self.read_data(cname2lab, os.path.join(list_dir, "trainlist01.txt"))
        test = self.read_data(cname2lab, os.path.join(list_dir, "testlist01.txt"))
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, cname2lab: dict, list_file: str) -> list:
        """Lines "<Action>/<video>.avi[ <class id>]" -> the video's middle frame."""
        items = []
        with open(self.require(list_file, "split list"), "r", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                action, video = line.split()[0].split("/")
                renamed = action_name(action)
                impath = os.path.join(self.image_dir, renamed, os.path.splitext(video)[0] + ".jpg")
                items.append(Datum(impath=impath, label=cname2lab[action], classname=renamed))
        return items
