/* The module: the Engine type, plus the verdict logic on bytes alone
 * (judge_http, judge_tcp) for the fuzz test that holds it to the Python
 * probers' verdicts, and for the sanitizer test.
 */
#include "engine.h"

/* Feed each chunk as one read, then the end of the stream if `eof`. */
static PyObject *judge(int kind, PyObject *chunks, PyObject *out, PyObject *needle,
                       PyObject *statuses, int eof)
{
    spec_t spec;
    if (spec_fill(&spec, kind, out, needle, statuses) < 0)
        return NULL;
    reader_t *rd = PyMem_Malloc(sizeof(reader_t));
    PyObject *seq = PySequence_Fast(chunks, "chunks must be a sequence of bytes");
    PyObject *result = NULL;
    if (rd == NULL || seq == NULL) {
        if (rd == NULL)
            PyErr_NoMemory();
        goto done;
    }
    reader_init(rd, &spec);
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq) && !rd->done; i++) {
        PyObject *c = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(c)) {
            PyErr_SetString(PyExc_TypeError, "chunks must be bytes");
            goto done;
        }
        reader_feed(rd, PyBytes_AS_STRING(c), (size_t)PyBytes_GET_SIZE(c));
    }
    if (eof && !rd->done)
        reader_eof(rd);
    if (rd->done)
        result = Py_BuildValue("(ii)", rd->outcome, rd->code);
    else
        result = Py_NewRef(Py_None);
done:
    PyMem_Free(rd);
    Py_XDECREF(seq);
    Py_XDECREF(spec.out);
    Py_XDECREF(spec.needle);
    Py_XDECREF(spec.statuses);
    PyMem_Free(spec.fail);
    return result;
}

static PyObject *judge_http(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *chunks, *statuses, *needle;
    int eof;
    if (!PyArg_ParseTuple(args, "OSOp:judge_http", &chunks, &statuses, &needle, &eof))
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize("", 0);
    if (out == NULL)
        return NULL;
    PyObject *r = judge(K_HTTP, chunks, out, needle, statuses, eof);
    Py_DECREF(out);
    return r;
}

static PyObject *judge_tcp(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *chunks, *expect;
    int eof;
    if (!PyArg_ParseTuple(args, "OOp:judge_tcp", &chunks, &expect, &eof))
        return NULL;
    return judge(K_TALK, chunks, Py_None, expect, Py_None, eof);
}

static PyMethodDef module_methods[] = {
    {"judge_http", judge_http, METH_VARARGS,
     "judge_http(chunks, statuses, needle, eof) -> (outcome, code) | None"},
    {"judge_tcp", judge_tcp, METH_VARARGS,
     "judge_tcp(chunks, expect, eof) -> (outcome, code) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_engine",
    "The compiled probe engine (see healthplane.checker.probes.engine).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__engine(void)
{
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0
        || PyModule_AddIntConstant(m, "CONNECT", K_CONNECT) < 0
        || PyModule_AddIntConstant(m, "TALK", K_TALK) < 0
        || PyModule_AddIntConstant(m, "HTTP", K_HTTP) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
