// The GPU step leaves DJL's engine and JNI and removes only the CPU libtorch.
def tree = new File(basedir, 'target/dependency-tree.txt').text
assert tree.contains('ai.djl.pytorch:pytorch-engine:jar:') : "pytorch-engine missing:\n" + tree
assert tree.contains('ai.djl.pytorch:pytorch-jni:jar:') : "pytorch-jni missing:\n" + tree
assert tree.contains('ai.djl:api:jar:') : "DJL api missing:\n" + tree
assert !tree.contains('pytorch-native-cpu') : "the CPU libtorch is still there:\n" + tree
true
