"""The NYU lecture's PyTorch training loop for the dense autoencoder, as a script to time.

`python benchmarks/lecture_loop.py DATA_DIR EPOCHS [LIMIT]`: 784 -> 30 -> 784 with
tanh, inputs on [-1, 1], MSE, Adam 1e-3, batch 256, a shuffling DataLoader,
as the lecture's notebook trains it (MNIST read here from the IDX files
rather than through torchvision, which this environment lacks). The
benchmark times it against `aekeras train dense`.
"""

import gzip
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def read_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(28 * 28, 30), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(30, 28 * 28), nn.Tanh())

    def forward(self, x):
        return self.decoder(self.encoder(x))


def main(data_dir, epochs, limit=0):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    images = read_images(Path(data_dir) / "train-images-idx3-ubyte.gz")[: limit or None]
    # transforms.ToTensor() then Normalize((0.5,), (0.5,)): [-1, 1].
    tensors = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) * 2 - 1
    dataloader = DataLoader(TensorDataset(tensors), batch_size=256, shuffle=True)
    model = Autoencoder()
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for (img,) in dataloader:
            img = img.view(img.size(0), -1)
            output = model(img)
            loss = criterion(output, img.data)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch [{epoch + 1}/{epochs}], loss:{loss.item():.4f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
