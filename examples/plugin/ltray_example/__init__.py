"""An example ltray plugin package: a CIFAR-style ResNet-20 (`ltray_example.resnet:resnet20`), a
dataset read from an .npz file (`ltray_example.shapes:shapes`) and a SNIP variant that prunes per
layer (`ltray_example.layer_snip:layer_snip`). Name them in a sweep file by these import paths, or
install the package (pip install examples/plugin) and use its entry-point names."""
