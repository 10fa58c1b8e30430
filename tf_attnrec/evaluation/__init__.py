"""tf_attnrec.evaluation"""
