"""The scikit-image / Dash sample app's pipeline, unchanged: ``multiscale_basic_features`` on
the raw image + ``RandomForestClassifier(n_estimators=50, max_depth=10, max_samples=0.05)``.

Examples
--------
>>> import numpy as np
>>> img = np.zeros((40, 40)); img[:, 20:] = 1
>>> lab = np.zeros((40, 40), np.uint8); lab[5, 2:15] = 1; lab[5, 25:38] = 2
>>> pred = SkimagePipeline().fit_predict([img], [lab], [img])[0]
>>> int(pred[30, 5]), int(pred[30, 35])
(1, 2)
"""

from __future__ import annotations

import numpy as np

NAME = "skimage"


class SkimagePipeline:
    """Features are memoised per image (by content digest) for the life of the object."""

    def __init__(self):
        self._feats = {}

    def features(self, image):
        from skimage.feature import multiscale_basic_features

        from segapp import io

        key = io.image_digest(image)
        if key not in self._feats:
            multi = image.ndim == 3 and image.shape[-1] > 1
            img = image[..., 0] if image.ndim == 3 and not multi else image
            self._feats[key] = multiscale_basic_features(img, channel_axis=-1 if multi else None).astype(np.float32)
        return self._feats[key]

    def fit_predict(self, train_images, train_labels, test_images):
        from sklearn.ensemble import RandomForestClassifier

        X = np.concatenate([self.features(im)[lab > 0] for im, lab in zip(train_images, train_labels)])
        y = np.concatenate([lab[lab > 0] for lab in train_labels])
        clf = RandomForestClassifier(n_estimators=50, max_depth=10, max_samples=0.05, n_jobs=-1, random_state=0)
        clf.fit(X, y)
        out = []
        for im in test_images:
            f = self.features(im)
            out.append(clf.predict(f.reshape(-1, f.shape[-1])).reshape(f.shape[:2]).astype(np.uint8))
        return out

    def forget(self):
        self._feats.clear()
