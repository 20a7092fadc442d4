"""Stanford Cars (196 classes): devkit .mat annotations, train 80/20 train/val, test."""
from __future__ import annotations

import os

from scipy.io import loadmat

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .base import Benchmark
from .splits import split_trainval


def year_first(name: str) -> str:
    """"AM General Hummer SUV 2000" -> "2000 AM General Hummer SUV"."""
    *words, year = name.split(" ")
    return " ".join([year, *words])


@DATASET_REGISTRY.register()
class StanfordCars(Benchmark):
    dataset_dir = "stanford_cars"
    image_subdir = ""  # cars_train/ and cars_test/ sit in the dataset folder
    split_file = "split_zhou_StanfordCars.json"
    split_relative_to_dataset_dir = True
    section = "StanfordCars"

    def create_split(self):
        devkit = os.path.join(self.dataset_dir, "devkit")
        meta_file = self.require(os.path.join(devkit, "cars_meta.mat"), "class-name file")
        trainval_file = self.require(os.path.join(devkit, "cars_train_annos.mat"), "annotation file")
        test_file = self.require(os.path.join(self.dataset_dir, "cars_test_annos_withlabels.mat"),
                                 "annotation file")
        classnames = [str(entry[0]) for entry in loadmat(meta_file)["class_names"][0]]
        trainval = self.read_data("cars_train", trainval_file, classnames)
        test = self.read_data("cars_test", test_file, classnames)
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, image_subdir: str, anno_file: str, classnames: list) -> list:
        items = []
        for anno in loadmat(anno_file)["annotations"][0]:
            label = int(anno["class"].item()) - 1
            impath = os.path.join(self.dataset_dir, image_subdir, str(anno["fname"].item()))
            items.append(Datum(impath=impath, label=label, classname=year_first(classnames[label])))
        return items
